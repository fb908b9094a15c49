"""Every ```python block in docs/*.md and README.md runs (blocks of one page share a namespace,
in order), so the documentation cannot rot."""
import pathlib
import re

import matplotlib
import pytest

matplotlib.use("Agg")
ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_code_blocks_run(page, capsys):
    blocks = BLOCK.findall(page.read_text())
    ns = {"__name__": f"docs_{page.stem}"}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"{page.name}[block {i}]", "exec"), ns)
        except Exception as e:  # name the page and block
            raise AssertionError(f"{page.name}, python block {i} failed: {type(e).__name__}: {e}") from e
    out = capsys.readouterr().out
    assert "False" not in out.split(), f"{page.name}: a printed check is False:\n{out}"


def test_every_chapter_has_runnable_code():
    chapters = [p for p in PAGES if re.match(r"\d\d_", p.name)]
    assert len(chapters) == 8
    for p in chapters:
        assert BLOCK.search(p.read_text()), f"{p.name} has no python block"
