"""Every change refscore makes to autograd lives in backends/autograd_patches.py (issue 31): it is in
effect right after `import refscore` in a fresh interpreter (not only after the first threaded fit),
an undone patch is seen and reinstalled, and no other source file patches autograd."""
import json
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _fresh(code):
    """Run ``code`` in a new interpreter and return its last printed line, parsed as JSON."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_patch_is_in_effect_right_after_import_refscore():
    got = _fresh("import json, sys, autograd.tracer, autograd.numpy.numpy_vjps as v\n"
                 "import refscore\n"
                 "from refscore.backends import autograd_patches as ap\n"
                 "print(json.dumps({'check': ap.check(), 'patches': list(ap.PATCHES),\n"
                 "  'stack': type(autograd.tracer.trace_stack).__qualname__,\n"
                 "  'rtms': v.repeat_to_match_shape.__module__,\n"
                 "  'training_imported': 'refscore.training' in sys.modules}))")
    assert got["patches"] == ["repeat_to_match_shape", "where", "reshape", "ravel", "getitem", "trace_stack"]
    assert got["check"] == {name: True for name in got["patches"]}
    assert got["stack"] == "UniqueTraceStack" and got["rtms"] == "refscore.backends.autograd_patches"
    assert not got["training_imported"]  # installed by `import refscore` itself, before any fit


def test_an_undone_patch_is_seen_and_reinstalled_and_threads_refuse_a_plain_stack():
    got = _fresh("import json, autograd.tracer, autograd.numpy as anp\n"
                 "from autograd.extend import defvjp\n"
                 "from autograd.numpy import numpy_vjps\n"
                 "from refscore.backends import autograd_patches as ap, get\n"
                 "from refscore.training.shards import ShardedValueAndGrad\n"
                 "numpy_vjps.repeat_to_match_shape = lambda *a: None\n"
                 "defvjp(anp.reshape, lambda ans, x, shape, order=None: lambda g: g)\n"
                 "autograd.tracer.trace_stack = autograd.tracer.TraceStack()\n"
                 "undone = ap.check()\n"
                 "try:\n"
                 "    ShardedValueAndGrad(lambda p, b, r: 0.0, get('numpy'), 2, 2); refused = ''\n"
                 "except RuntimeError as e:\n"
                 "    refused = str(e)\n"
                 "ap.install()\n"
                 "print(json.dumps({'undone': undone, 'refused': refused, 'redone': ap.check()}))")
    assert [k for k, ok in got["undone"].items() if not ok] == ["repeat_to_match_shape", "reshape", "trace_stack"]
    assert "trace stack is not refscore's thread-safe one" in got["refused"]
    assert all(got["redone"].values())


# assignments into autograd's modules, or rules registered for autograd's own primitives
_PATCHING = re.compile(r"numpy_vjps\.\w+\s*=(?!=)|tracer\.\w+\s*=(?!=)|\bautograd(\.\w+)+\s*=(?!=)"
                       r"|defvjp\(\s*(anp|np|numpy|onp|autograd)\.|defvjp\(\s*func\(|\b\w*(Box|VSpace)\.register\(")


def test_no_other_source_file_patches_autograd():
    files = sorted((ROOT / "refscore").rglob("*.py")) + sorted((ROOT / "backends").glob("*.py"))
    hits = {str(p.relative_to(ROOT)) for p in files if _PATCHING.search(p.read_text())}
    assert hits == {"backends/autograd_patches.py"}, hits


@pytest.mark.parametrize("line", ["numpy_vjps.repeat_to_match_shape = f", "autograd.tracer.trace_stack = s",
                                  "defvjp(anp.where, None, f, g)", "ArrayBox.register(T)"])
def test_the_scan_finds_a_planted_patch(line):
    assert _PATCHING.search(line) and not _PATCHING.search("x == autograd.tracer.trace_stack")
