"""Every page of the built book, checked as a reader sees it, in headless Chromium.

The book is built with `mkdocs build --strict` (which runs the code of the executed pages: the
first-model page and the chapters; docs/tools/execute.py) and served on 127.0.0.1. Each page of
the navigation is opened after a small script is added to it that records, once the page and
its images have loaded, every image's decoded width. On each page:

- math is typeset in the body, and in the table of contents where a heading holds math;
- no raw ``\\(`` or ``\\[`` is left in the visible text, nor a TeX command (``\\frac``, ...) whose
  delimiters Markdown ate;
- MathJax drew no error box (``merror``: "Misplaced &", an undefined command);
- every figure decodes (``naturalWidth > 0``);
- on executed pages, every code block that prints shows its output under it, and long output
  lines wrap (no output box scrolls sideways).

Every code line of the book's pages fits in 88 characters (the width a code block shows
unclipped). The first-model page is also run as its notebook, within its CPU budget. Skips, saying why, when
mkdocs (the `docs` extra) or Chromium (`apt-get install -y chromium`; `make test` installs it as
root) is missing.
"""
import functools
import http.server
import json
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS / "tools"))
PROBE = ("<script>window.addEventListener('load', () => setTimeout(() => {"
         "document.body.setAttribute('data-img-widths', JSON.stringify(Array.from(document.images).map("
         "i => [i.getAttribute('src'), i.naturalWidth])));"
         # output blocks whose text runs past their box (a long print line that neither wraps nor fits)
         "document.body.setAttribute('data-output-overflow', Array.from(document.querySelectorAll("
         "'.exec-output pre')).filter(p => p.scrollWidth > p.clientWidth + 1).length);"
         "}, 0));</script>")
FENCE = re.compile(r"^( *)```python\n(.*?)^\1```[ \t]*$", re.S | re.M)


def _need_mkdocs():
    pytest.importorskip("mkdocs", reason="the book needs the `docs` extra: pip install -e '.[docs]'")
    pytest.importorskip("jupytext", reason="the book needs the `docs` extra: pip install -e '.[docs]'")


def _chromium():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("Chromium is not installed: `apt-get install -y chromium` (make test does this as root)")
    return exe


def _nav_pages():
    """The Markdown pages of the navigation (optional pages included when present)."""
    try:
        import yaml
    except ImportError:  # the base install plus [test]: skip these pages' tests with the reason, don't fail collection
        reason = 'reading mkdocs.yml\'s navigation needs PyYAML: pip install pyyaml (or pip install -e ".[docs]")'
        return [pytest.param("mkdocs.yml", marks=pytest.mark.skip(reason=reason))]

    text = (ROOT / "mkdocs.yml").read_text()
    nav = yaml.safe_load(re.search(r"^nav:\n(?:  .*\n)+", text, re.M).group(0))["nav"]
    pages = [next(iter(item.values())) for item in nav]
    return pages + [p for p in ("conformance.md", "benchmarks.md") if (DOCS / p).exists() and p not in pages]


def _url_dir(page):
    return "" if page == "index.md" else page[:-3] + "/"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    _need_mkdocs()
    _chromium()
    out = tmp_path_factory.mktemp("book")
    import os

    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("WARNING")]
    assert not warnings, "the build warns:\n" + "\n".join(warnings)
    for page in out.rglob("*.html"):  # the probe records the decoded size of every image
        html = page.read_text(encoding="utf-8")
        page.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def server(site):
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    thread.join(timeout=5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _dump_dom(url):
    """The DOM after scripts ran (MathJax and the probe included), from headless Chromium."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
             "--virtual-time-budget=20000", "--dump-dom"]
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run([_chromium(), *flags, f"--user-data-dir={profile}", url],
                              capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _visible(dom):
    """The DOM without code, scripts, styles and typeset math: where raw TeX must not survive."""
    dom = re.sub(r"<(pre|code|script|style|mjx-container)\b.*?</\1>", "", dom, flags=re.S)
    return re.sub(r"<[^>]+>", "", dom)


# what MathJax leaves where it could not typeset a formula ("Misplaced &", an unknown command):
# an merror node, in the CHTML output (<mjx-merror>) or the SVG output (data-mml-node="merror")
MATH_ERROR = re.compile(r'<mjx-merror\b|<g\b[^>]*data-mml-node="merror"|data-mjx-error="')
# a TeX command left as text: math whose delimiters were lost (Markdown ate the backslash of \[)
RAW_TEX = re.compile(r"\\(?:frac|tfrac|big|Big|mathbb|mathrm|mathcal|sigma|Phi|sqrt|nabla|"
                     r"operatorname|begin|end|left|right|sum|int|epsilon)(?![A-Za-z])")


def math_errors(dom):
    """The MathJax error boxes of a rendered page, each with the message MathJax gives."""
    found = []
    dom = re.sub(r"<(style|script)\b.*?</\1>", "", dom, flags=re.S)  # MathJax's CSS names merror too
    for m in MATH_ERROR.finditer(dom):
        msg = re.search(r'data-mjx-error="([^"]*)"', dom[m.start():m.start() + 600])
        found.append(msg.group(1) if msg else dom[m.start():m.start() + 120])
    return found


def _toc(dom):
    """The page's table of contents (Material's secondary navigation)."""
    m = re.search(r'<nav class="md-nav md-nav--secondary".*?</nav>\s*</div>', dom, re.S)
    return m.group(0) if m else ""


def _executed_pages():
    import execute

    return {p.name for p in execute.executed_pages(DOCS)}


@pytest.mark.parametrize("page", _nav_pages() if (DOCS / "index.md").exists() else [], ids=lambda p: p)
def test_page_as_a_reader_sees_it(site, server, page):
    source = (DOCS / page).read_text()
    dom = _dump_dom(f"{server}/{_url_dir(page)}")
    m = re.search(r'data-img-widths="([^"]*)"', dom)
    assert m, f"{page}: the page did not finish loading"
    # every figure decodes
    images = json.loads(m.group(1).replace("&quot;", '"'))
    figures = [(src, w) for src, w in images if "figures/" in src]
    assert len(figures) == len(re.findall(r"!\[[^\]]*\]\(figures/", source)), f"{page}: figures missing: {figures}"
    bad = [src for src, w in figures if w <= 0]
    assert not bad, f"{page}: figures that do not decode: {bad}"
    # math typeset in the body; no raw TeX left anywhere a reader looks
    body_math = len(re.findall(r"\\\(|\\\[", re.sub(r"```.*?```", "", source, flags=re.S)))
    if body_math:
        assert dom.count("<mjx-container") >= 1, f"{page}: MathJax typeset nothing"
        assert '<span class="arithmatex">\\(' not in dom, f"{page}: math left untypeset"
    visible = _visible(dom)
    for raw in ("\\(", "\\["):
        i = visible.find(raw)
        assert i < 0, f"{page}: raw TeX in the visible text: …{visible[max(0, i - 80):i + 80]}…"
    assert not math_errors(dom), f"{page}: MathJax error boxes: {math_errors(dom)}"
    cmd = RAW_TEX.search(visible)
    assert cmd is None, (f"{page}: a TeX command outside typeset math: "
                         f"…{visible[max(0, cmd.start() - 80):cmd.end() + 80]}…")
    # math in the table of contents
    heads_with_math = [h for h in re.findall(r"^#{2,3} (.*)$", source, re.M) if "\\(" in h]
    if heads_with_math:
        assert _toc(dom).count("<mjx-container") >= len(heads_with_math), f"{page}: math in the contents is raw"
    # executed outputs under the code
    if page in _executed_pages():
        n_printing = sum(1 for _, code in FENCE.findall(source) if "print(" in code)
        outputs = re.findall(r'<div class="exec-output[^"]*">\s*<pre\b[^>]*>.*?<code>(.*?)</code>', dom, re.S)
        assert len(outputs) >= n_printing >= 1, f"{page}: {len(outputs)} outputs for {n_printing} printing blocks"
        assert all(o.strip() for o in outputs), f"{page}: an empty output block"
        overflow = re.search(r'data-output-overflow="(\d+)"', dom)
        assert overflow and overflow.group(1) == "0", f"{page}: output lines run out of their box"


def test_a_math_error_is_seen(site, server):
    """A page with a formula MathJax cannot typeset, and one whose display delimiters Markdown
    ate, are both caught by the checks every page gets."""
    page = site / "planted_math_error.html"
    page.write_text('<html><body><p><span class="arithmatex">\\[a &amp;= b\\]</span></p>'
                    "<p>[\\Phi\\big(x\\big)]</p>"  # the book's MathJax, as every page loads it
                    '<script src="javascripts/mathjax.js"></script>'
                    '<script src="javascripts/vendor/tex-svg-full.js"></script></body></html>',
                    encoding="utf-8")
    dom = _dump_dom(f"{server}/planted_math_error.html")
    assert dom.count("<mjx-container") == 1, "MathJax did not run on the planted page"
    assert any("Misplaced" in e for e in math_errors(dom)), math_errors(dom)
    assert RAW_TEX.search(_visible(dom)) is not None


def test_first_model_runs_as_a_notebook_within_its_budget():
    _need_mkdocs()
    import matplotlib

    matplotlib.use("Agg")
    import contextlib
    import io
    import os

    import notebooks

    nb = notebooks.chapter_notebook(DOCS / "first_model.md")
    cells = notebooks.code_cells(nb)
    assert len(cells) == len(FENCE.findall((DOCS / "first_model.md").read_text())) >= 5
    ns, out, here = {"__name__": "nb_first_model"}, io.StringIO(), os.getcwd()
    start = time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            with contextlib.redirect_stdout(out):
                for i, src in enumerate(cells):
                    exec(compile(src, f"first_model.ipynb[cell {i}]", "exec"), ns)
        finally:
            os.chdir(here)
    cpu = time.process_time() - start
    assert cpu < 60, f"the first-model notebook took {cpu:.0f} s of CPU (budget 60 s)"
    printed = out.getvalue()
    assert "sliced W2" in printed and "Fisher" in printed and not re.search(r"\b(True|False)\b", printed)


def test_outputs_go_under_their_blocks():
    import execute

    md = "text\n\n```python\nprint(1)\n```\n\n??? note \"x\"\n    ```python\n    y = 2\n    ```\n\n    ```python\n    print(y)\n    ```\n"
    out = execute.with_outputs(md, ["1\n", "", "2\n"])
    assert out.count("{.text .exec-output}") == 2
    assert "```\n\n``` {.text .exec-output}\n1\n```" in out
    assert "    ``` {.text .exec-output}\n    2\n    ```" in out


def test_a_failing_check_fails_the_build():
    import execute

    with pytest.raises(execute.SnippetError, match=r"page.md, python block 1 failed: AssertionError: 3 SE"):
        execute.run_blocks(["x = 1\nprint(x)", "assert x == 2, '3 SE'"], "page.md")


def test_toc_math_is_marked_for_mathjax():
    _need_mkdocs()
    import hooks

    html = '<span class="md-ellipsis">\n  The score does not see \\(Z\\)\n</span>'
    assert hooks.toc_math(html) == ('<span class="md-ellipsis">\n  The score does not see '
                                    '<span class="arithmatex">\\(Z\\)</span>\n</span>')


CODE_WIDTH = 88  # what a code block shows unclipped at the theme's width (1280 px)
ANY_FENCE = re.compile(r"^( *)```[^\n]*\n(.*?)^\1```[ \t]*$", re.S | re.M)


def long_code_lines(text, width=CODE_WIDTH):
    """``[(line number, length)]`` of every line of a fenced block of ``text`` longer than
    ``width`` characters once the fence's own indentation is removed."""
    long = []
    for m in ANY_FENCE.finditer(text):
        first = text[:m.start(2)].count("\n") + 1
        for k, line in enumerate(m.group(2).split("\n")):
            line = line[len(m.group(1)):] if line.startswith(m.group(1)) else line
            if len(line) > width:
                long.append((first + k, len(line)))
    return long


def test_long_code_lines_are_found():
    text = "x\n\n```python\nshort = 1\n" + "y = '" + "a" * 90 + "'\n```\n\n    ```text\n    " + "b" * 88 + "\n    ```\n"
    assert long_code_lines(text) == [(5, 96)]
    assert long_code_lines("```python\n" + "c" * 89 + "\n```\n", width=89) == []


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")))
def test_code_lines_fit_the_page(page):
    long = long_code_lines((DOCS / page).read_text())
    assert not long, (f"{page}: code lines over {CODE_WIDTH} characters (clipped at 1280 px), "
                      f"as (line, length): {long}")
