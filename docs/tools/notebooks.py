"""Each chapter of the book as a Jupyter notebook, generated from its Markdown with jupytext.

The Markdown is written for mkdocs (collapsible ``??? note`` blocks, ``\\(..\\)`` math,
``[name][refscore.x]`` cross-references); ``notebook_markdown`` rewrites those for Jupyter, then
jupytext turns every fenced python block into a code cell (solutions included) and the prose
into Markdown cells. ``code_cells`` is what the tests execute, in order, in one namespace.
"""
from __future__ import annotations

import pathlib
import re
import textwrap

CHAPTER = re.compile(r"^\d\d_.*\.md$")
ADMONITION = re.compile(r'^(?:\?\?\?\+?|!!!)\s+\w+(?:\s+"(?P<title>[^"]*)")?\s*$')
AUTOREF = re.compile(r"\[([^\]]+)\]\[[^\]]*\]")


def chapters(docs_dir):
    """The chapter pages ``NN_name.md`` of the book, in order."""
    return sorted(p for p in pathlib.Path(docs_dir).glob("*.md") if CHAPTER.match(p.name))


def _flatten_admonitions(lines):
    """``??? note "Title"`` + an indented body -> ``**Title**`` + the body, dedented."""
    out, i = [], 0
    while i < len(lines):
        m = ADMONITION.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        out += [f"**{m.group('title') or 'Note'}**", ""]
        i += 1
        body = []
        while i < len(lines) and (not lines[i].strip() or lines[i].startswith("    ")):
            body.append(lines[i])
            i += 1
        out += textwrap.dedent("\n".join(body)).split("\n")
    return out


def notebook_markdown(text):
    """Prose of a chapter rewritten for Jupyter: ``$`` math, no mkdocs references."""
    text = AUTOREF.sub(r"\1", text)
    text = re.sub(r"^\[Open this chapter as a Jupyter notebook\].*\n?", "", text, flags=re.M)
    text = text.replace("](figures/", "](../figures/")
    for old, new in (("\\(", "$"), ("\\)", "$"), ("\\[", "$$"), ("\\]", "$$")):
        text = text.replace(old, new)
    return text


def chapter_notebook(path):
    """The notebook (an ``nbformat`` node) of one chapter page."""
    import jupytext  # the `docs` extra

    flat = "\n".join(_flatten_admonitions(pathlib.Path(path).read_text().split("\n")))
    nb = jupytext.reads(flat, fmt="md")
    for cell in nb.cells:  # code is left exactly as written
        if cell.cell_type == "markdown":
            cell.source = notebook_markdown(cell.source)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata.pop("jupytext", None)
    return nb


def code_cells(nb):
    """The source of every code cell, in order."""
    return [c.source for c in nb.cells if c.cell_type == "code"]


def write_all(docs_dir, out_dir):
    """Write ``out_dir/NN_name.ipynb`` for every chapter whose notebook is missing or stale."""
    import jupytext

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for page in chapters(docs_dir):
        target = out_dir / (page.stem + ".ipynb")
        if not target.exists() or target.stat().st_mtime < max(page.stat().st_mtime, pathlib.Path(__file__).stat().st_mtime):
            jupytext.write(chapter_notebook(page), target, fmt="ipynb")
