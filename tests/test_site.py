"""The built book, checked as a reader sees it: built with `mkdocs build --strict`, served on
127.0.0.1, and opened in headless Chromium (Debian's `chromium`; `make test` installs it when run
as root). Math must be typeset with no network (MathJax is vendored, not loaded from a CDN), the
API reference must hold no raw reST math, and every figure must load as a PNG. The docs builds
of `make test` and `make docs` must fail on any warning (no `--quiet`, which hides warnings from
`--strict`). Skips, and says why, where mkdocs is not installed."""
import functools
import html.parser
import http.server
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import threading
import urllib.request

import pytest

for _plugin in ("mkdocs", "mkdocstrings", "material"):
    pytest.importorskip(_plugin, reason=f"{_plugin} is not installed: pip install -e '.[docs]' (make test does this)")

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHAPTERS = sorted(p.stem for p in (ROOT / "docs").glob("[0-9][0-9]_*.md"))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def _make_docs_commands():
    """The `mkdocs build` lines of the Makefile's `test` and `docs` recipes, as argument lists."""
    commands, target = {}, None
    for line in (ROOT / "Makefile").read_text().splitlines():
        if line and not line.startswith(("\t", "#", " ")):
            target = line.split(":")[0]
        elif line.startswith("\t") and "mkdocs build" in line and target in ("test", "docs"):
            words = shlex.split(line.replace("$(PY)", shlex.quote(sys.executable)))
            commands[target] = [w for w in words if "=" not in w or w.startswith("-")]
    return commands


@pytest.mark.parametrize("target", ["test", "docs"])
def test_make_docs_build_fails_on_a_warning(target, tmp_path):
    """A one-page book with a broken link (a warning, not an error) must fail the Makefile's build."""
    command = _make_docs_commands()[target]
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text("# Home\n\nSee [a page that is missing](missing.md).\n")
    (tmp_path / "mkdocs.yml").write_text("site_name: planted warning\n")
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert "missing.md" in proc.stdout + proc.stderr, f"`make {target}` hid the warning: {command}"
    assert proc.returncode != 0, f"`make {target}` passed a build with a warning: {command}"


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


class _ImgSrc(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.srcs.append(dict(attrs)["src"])


def _chromium():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("Chromium is not installed and could not be: `apt-get install -y chromium` "
                    "(make test does this when run as root)")
    return exe


def _dump_dom(url):
    """The DOM after scripts ran (MathJax included), from headless Chromium."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
             "--virtual-time-budget=15000", "--dump-dom"]
    with __import__("tempfile").TemporaryDirectory() as profile:
        proc = subprocess.run([_chromium(), *flags, f"--user-data-dir={profile}", url],
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _prose(dom):
    """The DOM without code, scripts and styles: where raw TeX must not survive."""
    return re.sub(r"<(pre|code|script|style)\b.*?</\1>", "", dom, flags=re.S)


def test_no_raw_rest_math_and_no_math_cdn(site):
    pages = list(site.rglob("*.html"))
    assert len(pages) > len(CHAPTERS)
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert ":math:" not in text and ".. math::" not in text, f"raw reST math in {page.relative_to(site)}"
        remote = re.findall(r'<script[^>]+src="(https?:)?//[^"]*"', text)
        assert not remote, f"{page.relative_to(site)} loads a script from the network: {remote}"
    assert (site / "javascripts" / "vendor" / "tex-svg-full.js").stat().st_size > 1_000_000


def test_every_chapter_has_a_figure_that_is_a_png(site, server):
    for stem in CHAPTERS:
        parser = _ImgSrc()
        parser.feed((site / stem / "index.html").read_text(encoding="utf-8"))
        figures = [s for s in parser.srcs if "figures/" in s]
        assert figures, f"chapter {stem} has no figure"
        for src in figures:
            with urllib.request.urlopen(f"{server}/{stem}/{src}", timeout=10) as r:
                assert r.status == 200 and r.read(8) == PNG_MAGIC, f"{stem}: {src} is not a PNG"


def test_chapter_math_is_typeset_in_chromium(server):
    dom = _dump_dom(f"{server}/03_score_matching/")
    assert dom.count("<mjx-container") > 10, "MathJax did not typeset the chapter"
    prose = _prose(dom)
    for raw in ("\\(", "\\["):
        i = prose.find(raw)
        assert i < 0, f"raw TeX left in the rendered page: …{prose[max(0, i - 80):i + 80]}…"


def test_api_reference_math_is_typeset_in_chromium(server):
    dom = _dump_dom(f"{server}/api/")
    assert dom.count("<mjx-container") > 50
    assert "\\(" not in _prose(dom) and ":math:" not in dom
    errors = re.findall(r'data-mjx-error="([^"]*)"', dom)
    assert not errors and "<mjx-merror" not in dom, f"MathJax errors on the API page: {errors}"


def test_figures_decode_in_chromium(site, server):
    """A probe page loads every figure as <img> and records naturalWidth once all have loaded."""
    figs = sorted(p.name for p in (site / "figures").glob("*.png"))
    imgs = "".join(f'<img src="figures/{f}">' for f in figs)
    probe = ("<html><body>" + imgs + "<script>window.onload = () => { document.body.setAttribute("
             "'data-widths', Array.from(document.images).map(i => i.naturalWidth).join(',')); };"
             "</script></body></html>")
    (site / "figure_probe.html").write_text(probe)
    dom = _dump_dom(f"{server}/figure_probe.html")
    m = re.search(r'data-widths="([^"]*)"', dom)
    assert m, "the probe page did not finish loading its images"
    widths = [int(w) for w in m.group(1).split(",")]
    assert len(widths) == len(figs) >= len(CHAPTERS) and min(widths) > 0, dict(zip(figs, widths))


def test_griffe_extension_rewrites_rest_math():
    sys.path.insert(0, str(ROOT / "docs" / "tools"))
    from griffe_math import rest_math_to_arithmatex

    doc = "Loss.\n\n.. math::\n   a &= b \\\\\n   c &= d\n\nwith :math:`x_i` and :func:`refscore.losses.esm`.\n"
    out = rest_math_to_arithmatex(doc)
    assert "\\[\\begin{aligned}a &= b \\\\ c &= d\\end{aligned}\\]" in out  # MathJax needs aligned
    one = rest_math_to_arithmatex(".. math:: a \\& b = c\n")
    assert "\\[a \\& b = c\\]" in one, one  # an escaped & is text, not an alignment point
    assert "\\(x_i\\)" in out and "`refscore.losses.esm`" in out
    assert ":math:" not in out and ".. math::" not in out and ":func:" not in out
