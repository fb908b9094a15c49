"""mkdocs hooks for the book (registered in mkdocs.yml under ``hooks:``).

on_config      — add optional pages (written by other parts of the project) to the nav when present.
on_pre_build   — vendor MathJax into the site (no CDN at view time), draw the figures, run
                 the code of the chapters and of execute.EXTRA_PAGES (docs/tools/execute.py), and
                 write the chapters and notebooks.NOTEBOOK_PAGES as executed notebooks. Each step is
                 cached: it reruns only when what it depends on has changed.
on_page_markdown — links to an optional page that is absent become plain text; every code block
                 of an executed page gets its output under it.
on_post_page   — math in the table of contents is typeset like math in the body.
"""
from __future__ import annotations

import logging
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile

from mkdocs.exceptions import PluginError

TOOLS = pathlib.Path(__file__).resolve().parent
DOCS = TOOLS.parent
sys.path.insert(0, str(TOOLS))

import execute  # noqa: E402  (docs/tools, put on the path just above)
import make_figures  # noqa: E402
import notebooks  # noqa: E402

log = logging.getLogger("mkdocs.hooks.refscore")
MATHJAX_VERSION = "3.2.2"
MATHJAX_FILES = {"package/es5/tex-svg-full.js": "tex-svg-full.js", "package/LICENSE": "LICENSE"}
VENDOR = DOCS / "javascripts" / "vendor"
# page -> nav title, inserted before the API reference when the page exists
OPTIONAL_PAGES = {"conformance.md": "Check your implementation", "benchmarks.md": "Benchmarks"}


def vendor_mathjax(dest=VENDOR):
    """Copy MathJax's self-contained ``tex-svg-full.js`` from the npm package into the docs."""
    if all((dest / name).exists() for name in MATHJAX_FILES.values()):
        return
    npm = shutil.which("npm")
    if npm is None:
        raise PluginError("the docs vendor MathJax from npm, but `npm` is not installed: "
                          "`apt-get install -y npm` (or run `make docs-deps`)")
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([npm, "pack", f"mathjax@{MATHJAX_VERSION}", "--silent"], cwd=tmp, check=True,
                       capture_output=True)
        (tgz,) = pathlib.Path(tmp).glob("mathjax-*.tgz")
        with tarfile.open(tgz) as tar:
            for member, name in MATHJAX_FILES.items():
                (dest / name).write_bytes(tar.extractfile(member).read())
    log.info("vendored MathJax %s into %s", MATHJAX_VERSION, dest)


def on_config(config):
    nav = config.get("nav") or []
    listed = {next(iter(item.values())) for item in nav if isinstance(item, dict)}
    for page, title in OPTIONAL_PAGES.items():
        if (DOCS / page).exists() and page not in listed:
            nav.insert(len(nav) - 1, {title: page})  # before the API reference
    return config


OUTPUTS = {}  # page name -> what each of its python blocks printed (filled by on_pre_build)


def on_pre_build(config):
    vendor_mathjax()
    try:
        OUTPUTS.clear()
        OUTPUTS.update(execute.run_all(DOCS))
    except execute.SnippetError as e:  # a snippet's own check failed: the build fails
        raise PluginError(str(e)) from e
    make_figures.build(DOCS / "figures")  # after the pages ran: a figure may reuse a page's objects
    notebooks.write_all(DOCS, DOCS / "notebooks", OUTPUTS)


def on_page_markdown(markdown, page, config, files):
    for name, title in OPTIONAL_PAGES.items():
        if not (DOCS / name).exists():
            # "[text](conformance.md#x)" -> "*text*": the page is written elsewhere in the project
            markdown = re.sub(r"\[([^\]]+)\]\(" + re.escape(name) + r"(#[^)]*)?\)", r"*\1*", markdown)
    outputs = OUTPUTS.get(page.file.src_uri)
    if outputs is not None:
        if len(outputs) != len(execute.FENCE.findall(markdown)):
            raise PluginError(f"{page.file.src_uri}: {len(outputs)} outputs for "
                              f"{len(execute.FENCE.findall(markdown))} python blocks")
        markdown = execute.with_outputs(markdown, outputs)
    return markdown


NAV_LABEL = re.compile(r'(<span class="md-ellipsis">)(.*?)(</span>)', re.S)
INLINE_TEX = re.compile(r"\\\((.+?)\\\)", re.S)


def toc_math(html):
    """Wrap the raw \\(...\\) left in navigation labels (the toc extension keeps a heading's text,
    not its markup) in the class MathJax typesets (docs/javascripts/mathjax.js)."""
    def label(m):
        inner = INLINE_TEX.sub(r'<span class="arithmatex">\\(\1\\)</span>', m.group(2))
        return m.group(1) + inner + m.group(3)

    return NAV_LABEL.sub(label, html)


def on_post_page(output, page, config):
    return toc_math(output)
