"""mkdocs hooks for the book (registered in mkdocs.yml under ``hooks:``).

on_config      — add optional pages (written by other parts of the project) to the nav when present.
on_pre_build   — vendor MathJax into the site (no CDN at view time), draw the figures, and
                 write every chapter as a Jupyter notebook. Each step is cached: it reruns only
                 when its output is missing or older than the code that makes it.
on_page_markdown — links to an optional page that is absent become plain text.
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

import make_figures  # noqa: E402  (docs/tools, put on the path just above)
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


def on_pre_build(config):
    vendor_mathjax()
    make_figures.build(DOCS / "figures")
    notebooks.write_all(DOCS, DOCS / "notebooks")


def on_page_markdown(markdown, page, config, files):
    for name, title in OPTIONAL_PAGES.items():
        if not (DOCS / name).exists():
            # "[text](conformance.md#x)" -> "*text*": the page is written elsewhere in the project
            markdown = re.sub(r"\[([^\]]+)\]\(" + re.escape(name) + r"(#[^)]*)?\)", r"*\1*", markdown)
    return markdown
