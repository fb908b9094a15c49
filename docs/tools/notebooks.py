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
    text = re.sub(r"^\[Open this (?:chapter|page) as a Jupyter notebook\].*\n?", "", text, flags=re.M)
    text = text.replace("](figures/", "](../figures/")
    for old, new in (("\\(", "$"), ("\\)", "$"), ("\\[", "$$"), ("\\]", "$$")):
        text = text.replace(old, new)
    return text


NOTEBOOK_PAGES = ("first_model.md", "digits.md")  # besides the chapters


def book_pages(docs_dir):
    """Every page written as a notebook: the first-model and digits pages (when present) and the
    chapters."""
    extra = [pathlib.Path(docs_dir) / p for p in NOTEBOOK_PAGES]
    return [p for p in extra if p.exists()] + chapters(docs_dir)


def chapter_notebook(path, outputs=None):
    """The notebook (an ``nbformat`` node) of one page; ``outputs`` (one str per code cell, what
    the build printed when it ran the page: docs/tools/execute.py) become the cells' outputs."""
    import jupytext  # the `docs` extra
    import nbformat

    flat = "\n".join(_flatten_admonitions(pathlib.Path(path).read_text().split("\n")))
    nb = jupytext.reads(flat, fmt="md")
    for cell in nb.cells:  # code is left exactly as written
        if cell.cell_type == "markdown":
            cell.source = notebook_markdown(cell.source)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata.pop("jupytext", None)
    if outputs is not None:
        code = [c for c in nb.cells if c.cell_type == "code"]
        if len(code) != len(outputs):
            raise ValueError(f"{path}: {len(code)} code cells but {len(outputs)} outputs")
        for n, (cell, out) in enumerate(zip(code, outputs), start=1):
            cell.execution_count = n
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=out)] if out else []
    return nb


def code_cells(nb):
    """The source of every code cell, in order."""
    return [c.source for c in nb.cells if c.cell_type == "code"]


def write_all(docs_dir, out_dir, outputs=None):
    """Write ``out_dir/<page>.ipynb`` for the first-model page and every chapter, executed: with
    ``outputs`` (``{page name: [output per block]}``) every code cell carries what it printed."""
    import jupytext

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for page in book_pages(docs_dir):
        nb = chapter_notebook(page, (outputs or {}).get(page.name))
        target = out_dir / (page.stem + ".ipynb")
        text = jupytext.writes(nb, fmt="ipynb")
        if not target.exists() or target.read_text() != text:  # unchanged notebooks keep their mtime
            target.write_text(text)
