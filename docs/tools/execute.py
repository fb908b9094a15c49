"""Run the book's code at build time and show what it prints under each block.

Every ```python block of an executed page (the chapters and EXTRA_PAGES) runs in
order in one namespace per page — what a reader gets from "Run all" in the page's notebook — and
its standard output is inserted under the block as an output block (class ``exec-output``; the
book's stylesheet wraps long lines). A block that raises, including a snippet's own ``assert``
that a measured value lies within a few standard errors of its prediction, stops the build with
the page, the block and the error.

Results are cached in ``.cache/docs-exec/`` under a hash of the page's code and of refscore's
source, so a second build (the browser test's, or ``make docs`` after ``make test``) reruns
nothing that cannot have changed.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pathlib
import re
import tempfile
import textwrap
import time
import traceback

TOOLS = pathlib.Path(__file__).resolve().parent
DOCS = TOOLS.parent
ROOT = DOCS.parent
CACHE = ROOT / ".cache" / "docs-exec"
# a python fence, top level or indented inside an admonition (the body is dedented to run)
FENCE = re.compile(r"^( *)```python\n(.*?)^\1```[ \t]*$", re.S | re.M)
# pages besides the chapters whose code runs and shows its output (index.md promises it of every block)
EXTRA_PAGES = ("first_model.md", "digits.md", "conventions.md", "api.md")


_FRESH = {}  # page name -> (codes, namespace) of a page run in this process (figures reuse it)


class SnippetError(RuntimeError):
    """A code block of the book failed: the message names the page and the block."""


def executed_pages(docs_dir=DOCS):
    """The pages whose code runs at build time: EXTRA_PAGES and the chapters, in order."""
    import notebooks  # docs/tools, on the path when the hooks run

    extra = [pathlib.Path(docs_dir) / p for p in EXTRA_PAGES if (pathlib.Path(docs_dir) / p).exists()]
    return extra + notebooks.chapters(docs_dir)


def blocks(text):
    """``[(indent, code)]`` of every python fence of a page, the code dedented."""
    return [(indent, textwrap.dedent(code)) for indent, code in FENCE.findall(text)]


def _source_digest():
    """A hash of everything the snippets' results can depend on besides their own code."""
    h = hashlib.sha256()
    for folder in (ROOT / "refscore", ROOT / "backends"):
        for f in sorted(folder.rglob("*.py")):
            h.update(str(f.relative_to(ROOT)).encode())
            h.update(f.read_bytes())
    h.update(pathlib.Path(__file__).read_bytes())
    return h.hexdigest()


def run_blocks(codes, page_name, ns=None):
    """Run ``codes`` in one namespace; return the standard output of each, and the seconds taken.

    Runs in a temporary working directory (snippets that save a model leave nothing behind),
    with matplotlib's non-interactive backend."""
    import matplotlib

    matplotlib.use("Agg")
    ns = {"__name__": f"book_{pathlib.Path(page_name).stem}"} if ns is None else ns
    with _one_blas_thread():
        return _run_in_tmp(codes, page_name, ns)


@contextlib.contextmanager
def _one_blas_thread():
    """One BLAS thread while the book's code runs: at its sizes one thread is as fast as two, and
    the times a page prints do not depend on how busy the build machine's other cores are."""
    try:
        from threadpoolctl import threadpool_limits  # comes with scikit-learn (the `data` extra)
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _run_in_tmp(codes, page_name, ns):
    """``run_blocks``'s body: each block in turn, in a temporary working directory."""
    outputs, start, here = [], time.perf_counter(), os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            for i, code in enumerate(codes):
                out = io.StringIO()
                try:
                    with contextlib.redirect_stdout(out):
                        exec(compile(code, f"{page_name}[block {i}]", "exec"), ns)
                except Exception as e:
                    tb = "".join(traceback.format_exception(e)[-6:])
                    raise SnippetError(f"{page_name}, python block {i} failed: {type(e).__name__}: {e}\n"
                                       f"output so far:\n{out.getvalue()}\n{tb}") from e
                outputs.append(out.getvalue())
        finally:
            os.chdir(here)
    return outputs, time.perf_counter() - start


def page_namespace(path, containing=None):
    """The namespace after running the blocks of ``path`` (all, or those whose code contains the
    string ``containing``): a figure reuses the page's own objects instead of a copy of them."""
    codes = [code for _, code in blocks(pathlib.Path(path).read_text()) if containing is None or containing in code]
    fresh = _FRESH.get(pathlib.Path(path).name)
    if fresh is not None and fresh[0] == codes:
        return fresh[1]
    ns = {"__name__": f"book_{pathlib.Path(path).stem}"}
    run_blocks(codes, pathlib.Path(path).name, ns)
    return ns


def run_page(path, digest=None):
    """Outputs of every python block of ``path`` (a list of str), from the cache when fresh."""
    path = pathlib.Path(path)
    codes = [code for _, code in blocks(path.read_text())]
    key = hashlib.sha256(((digest or _source_digest()) + "\0".join(codes)).encode()).hexdigest()[:20]
    cached = CACHE / f"{path.stem}-{key}.json"
    if cached.exists():
        return json.loads(cached.read_text())["outputs"]
    ns = {"__name__": f"book_{path.stem}"}
    outputs, seconds = run_blocks(codes, path.name, ns)
    _FRESH[path.name] = (codes, ns)
    CACHE.mkdir(parents=True, exist_ok=True)
    for old in CACHE.glob(f"{path.stem}-*.json"):
        old.unlink()
    cached.write_text(json.dumps({"page": path.name, "seconds": round(seconds, 2), "outputs": outputs}))
    return outputs


def run_all(docs_dir=DOCS):
    """``{page name: [output of each block]}`` for every executed page."""
    digest = _source_digest()
    return {p.name: run_page(p, digest) for p in executed_pages(docs_dir)}


def with_outputs(markdown, outputs):
    """The page's Markdown with each block's output in an ``exec-output`` fence under it."""
    it = iter(outputs)

    def add(m):
        out = next(it, "")
        if not out.strip():
            return m.group(0)
        indent = m.group(1)
        body = "\n".join(indent + line if line else line for line in out.rstrip("\n").replace("```", "'''").split("\n"))
        return f"{m.group(0)}\n\n{indent}``` {{.text .exec-output}}\n{body}\n{indent}```"

    return FENCE.sub(add, markdown)
