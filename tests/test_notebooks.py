"""Every chapter opens as a Jupyter notebook (generated from its Markdown with jupytext, the `docs`
extra) and the notebook executes: its code cells run in order in one namespace — exactly what a
kernel running "Run all" does, without starting a kernel (no ipykernel dependency). Solutions
hidden in collapsed blocks on the site are ordinary cells in the notebook, and they run too."""
import contextlib
import io
import pathlib
import re
import sys

import matplotlib
import pytest

matplotlib.use("Agg")
jupytext = pytest.importorskip("jupytext", reason="notebooks need the `docs` extra: pip install -e '.[docs]'")
ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs" / "tools"))
import notebooks  # noqa: E402

CHAPTERS = notebooks.chapters(ROOT / "docs")
FENCE = re.compile(r"^( *)```python\n(.*?)^\1```", re.S | re.M)


def test_there_are_eight_chapters():
    assert [p.name[:2] for p in CHAPTERS] == [f"{i:02d}" for i in range(1, 9)]


@pytest.mark.parametrize("page", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_notebook_executes_and_checks_itself(page):
    nb = notebooks.chapter_notebook(page)
    cells = notebooks.code_cells(nb)
    # every python block of the page (top level or inside a collapsed solution) is a cell
    assert len(cells) == len(FENCE.findall(page.read_text())) >= 1
    ns, out = {"__name__": f"nb_{page.stem}"}, io.StringIO()
    for i, src in enumerate(cells):
        with contextlib.redirect_stdout(out):
            try:
                exec(compile(src, f"{page.stem}.ipynb[cell {i}]", "exec"), ns)
            except Exception as e:  # name the notebook and cell
                raise AssertionError(f"{page.stem}.ipynb, code cell {i} failed: {type(e).__name__}: {e}") from e
    printed = out.getvalue()
    # snippets print value, reference and standard error — never a bare boolean
    assert printed.strip(), f"{page.stem}: the notebook prints nothing to check"
    assert not re.search(r"\b(True|False)\b", printed), f"{page.stem} prints a bare boolean:\n{printed}"


def test_notebook_markdown_has_no_mkdocs_syntax():
    page = ROOT / "docs" / "01_ebm.md"
    nb = notebooks.chapter_notebook(page)
    prose = "".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "??? note" not in prose and "][refscore." not in prose and "\\(" not in prose
    assert notebooks.notebook_markdown("\\(a\\) and [f][refscore.losses.esm]") == "$a$ and f"
