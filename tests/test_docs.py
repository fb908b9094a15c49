"""Every ```python block in docs/*.md and README.md runs (blocks of one page share a namespace,
in order), so the documentation cannot rot. Chapters run here through their notebooks
(tests/test_notebooks.py); this file runs the other pages and checks the rules every snippet obeys."""
import contextlib
import io
import pathlib
import re
import textwrap

import matplotlib
import pytest

matplotlib.use("Agg")
ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
CHAPTER = re.compile(r"^\d\d_")
# a python fence, top level or indented inside an admonition (the body is dedented)
BLOCK = re.compile(r"^( *)```python\n(.*?)^\1```", re.S | re.M)
PRIVATE = re.compile(r"(?<![\w.])(?:\w+\.)+_[a-z]\w*|\bfrom\s+\S+\s+import\s+.*\b_[a-z]\w*")


def blocks(page):
    return [textwrap.dedent(code) for _, code in BLOCK.findall(page.read_text())]


@pytest.mark.parametrize("page", [p for p in PAGES if not CHAPTER.match(p.name)], ids=lambda p: p.name)
def test_code_blocks_run(page):
    ns, out = {"__name__": f"docs_{page.stem}"}, io.StringIO()
    for i, code in enumerate(blocks(page)):
        with contextlib.redirect_stdout(out):
            try:
                exec(compile(code, f"{page.name}[block {i}]", "exec"), ns)
            except Exception as e:  # name the page and block
                raise AssertionError(f"{page.name}, python block {i} failed: {type(e).__name__}: {e}") from e
    assert not re.search(r"\b(True|False)\b", out.getvalue()), f"{page.name} prints a bare boolean"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_docs_use_no_private_names(page):
    for code in blocks(page):
        hit = PRIVATE.search(code)
        assert hit is None, f"{page.name} uses a private name: {hit.group(0)!r}"


def test_every_chapter_has_runnable_code_and_a_figure():
    chapters = [p for p in PAGES if CHAPTER.match(p.name)]
    assert len(chapters) == 8
    for p in chapters:
        text = p.read_text()
        assert BLOCK.search(text), f"{p.name} has no python block"
        assert re.search(r"!\[[^\]]*\]\(figures/\w+\.png\)", text), f"{p.name} has no figure"


def test_the_build_draws_at_least_20_figures_and_every_one_is_shown():
    """docs/tools/make_figures.py draws the book's figures at build time (issue 35: >= 20); each
    is shown on a page, and every figure a page shows is one the build draws."""
    import sys

    sys.path.insert(0, str(ROOT / "docs" / "tools"))
    try:
        import make_figures
    finally:
        sys.path.remove(str(ROOT / "docs" / "tools"))
    drawn = set(make_figures.FIGURES)
    shown = {name for p in PAGES for name in re.findall(r"\]\(figures/(\w+)\.png\)", p.read_text())}
    assert len(drawn) >= 20, f"the docs build draws {len(drawn)} figures: {sorted(drawn)}"
    assert drawn == shown, f"drawn, not shown: {sorted(drawn - shown)}; shown, not drawn: {sorted(shown - drawn)}"


def test_users_are_pointed_to_pages_they_have():
    """API.md is the engineers' contract, not shipped: the README, the book and the check table
    point to the book's own pages instead; the README names the one-minute tour."""
    from refscore.apps.check import IDENTITIES

    for page in PAGES:
        assert "API.md" not in page.read_text(), f"{page.name} cites API.md, which users do not have"
    assert not [i for i in IDENTITIES if "API.md" in i.source], "the check table cites API.md"
    assert "refscore tour --quick" in (ROOT / "README.md").read_text()
