r"""The GPU check in one command (issue 25): what ``tools/gpu-check.sh`` runs after installing
the carried wheels. ``python -m refscore.apps.bench_gpu --out gpu-output [--dry-run]``.

A list of small named steps over one context (:data:`STEPS`), each writing its files under
``--out``:

1. ``environment`` — versions and the device (``env.json``);
2. ``tests`` — ``tests/test_gpu.py``: parity with NumPy (values, parameter derivatives to third
   order; float64 to 1e-10, float32 to 1e-4 relative), no host sync per step, the fused
   activation kernels (``tests.xml``, ``tests.log``);
3. ``bench`` — ``refscore bench --backend cupy --torch``: SSM-VR at n = 2²⁰, ULA on the GMM with
   2¹⁸ chains, both dtypes (``bench/bench.json``);
4. ``bandwidth`` — each ULA row's fraction of the memory-bandwidth bound (``bandwidth.json``);
5. ``mnist`` — the timings and verdicts of the GPU images run, ``refscore images mnist --backend
   cupy``, which ``tools/gpu-check.sh`` runs before this module (skipped where it did not run).

``--dry-run`` runs the same steps on the CPU with the strict stand-in backend and tiny sizes (what
CI runs). The last line printed is the one-line summary (also ``summary.json``). Exit status: 0
every step passed, 1 a test or a step failed, 2 the check could not run (no device, no pytest).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

#: the dry run's sizes: every code path, in seconds
DRY_SIZES = {"n_ssm": 256, "n_gmm": 128, "n_chains": 1000, "ula_steps": 5}
#: ULA workloads: (name prefix in the bench table, dimension d, steps or the Context size holding them)
ULA_ROWS = (("ULA, GMM", 64, 50), ("ULA, 2-D", 2, "ula_steps"))


class Check:
    r"""The shared context: options, the backend name, and each step's results."""

    def __init__(self, out, dry_run, repo):
        self.out, self.dry_run, self.repo = out, dry_run, repo
        self.backend = "strict" if dry_run else "cupy"
        self.results, self.status, self.t0, self.no_device = {}, 0, time.perf_counter(), False

    def write(self, name, obj):
        r"""Write ``obj`` as JSON to ``out/name``."""
        with open(os.path.join(self.out, name), "w") as f:
            json.dump(obj, f, indent=1, default=str)

    def fail(self, code, why):
        r"""Record a failure (the worse exit status wins) and say why on stderr."""
        self.status = max(self.status, code)
        print(f"gpu-check: {why}", file=sys.stderr)


def _version(module):
    try:
        return __import__(module).__version__
    except Exception as e:  # absent or broken: say which
        return f"absent ({type(e).__name__})"


def environment(c):
    r"""Versions of everything the check uses, and the device's name (env.json)."""
    from .. import backends

    env = {m: _version(m) for m in ("numpy", "scipy", "autograd", "cupy", "torch", "pytest")}
    env.update(python=platform.python_version(), machine=platform.machine(), backend=c.backend)
    try:
        env["device"] = backends.get(c.backend).device_name()
    except (ImportError, RuntimeError) as e:
        c.fail(2, f"the {c.backend} backend is unusable: {e}")
        c.no_device = True
        env["device"] = f"none ({e})"
    c.results["environment"] = env
    c.write("env.json", env)


def tests(c):
    r"""tests/test_gpu.py under pytest, from a folder without the source tree (so the staged
    package is the one imported); JUnit XML and the log go to ``out``."""
    xml = os.path.join(c.out, "tests.xml")
    cmd = [sys.executable, "-m", "pytest", os.path.join(c.repo, "tests", "test_gpu.py"), "-m", "gpu", "-q", "-rs",
           "--noconftest", "-p", "no:cacheprovider", f"--junitxml={xml}", f"--rootdir={c.repo}"]
    env = dict(os.environ, REFSCORE_GPU_TEST_BACKEND=c.backend)
    try:
        p = subprocess.run(cmd, cwd=c.out, env=env, capture_output=True, text=True, timeout=300)
        log = p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:  # first-use kernel compilation is the slow part on a fresh GPU
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        log = f"{out}\ntimed out after 300 s"
    with open(os.path.join(c.out, "tests.log"), "w") as f:
        f.write(log)
    if not os.path.exists(xml):
        c.results["tests"] = {"error": log.strip().splitlines()[-1:] or ["no output"]}
        return c.fail(1 if log.endswith("timed out after 300 s") else 2, f"pytest: {c.results['tests']['error']} (see tests.log)")
    s = ET.parse(xml).getroot()
    s = s if s.tag == "testsuite" else s.find("testsuite")
    n = {k: int(s.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    n["passed"] = n["tests"] - n["failures"] - n["errors"] - n["skipped"]
    c.results["tests"] = n
    if n["failures"] or n["errors"]:
        c.fail(1, f"{n['failures']} GPU tests failed, {n['errors']} errors (see tests.log)")
    elif n["passed"] == 0:
        c.fail(2, "every GPU test skipped (see tests.log)")


def bench(c):
    r"""``refscore bench --torch`` on the device backend (tiny sizes in the dry run)."""
    from .bench import run_bench

    folder = os.path.join(c.out, "bench")
    run_bench(backend=c.backend, out=folder, torch=True, repeats=1 if c.dry_run else 3,
              sizes=DRY_SIZES if c.dry_run else None)
    with open(os.path.join(folder, "bench.json")) as f:
        c.results["bench"] = json.load(f)


def copy_bandwidth(xp, sync, nbytes):
    r"""Measured device-memory bandwidth of a copy, bytes/s: :math:`2N/t` for an N-byte array read
    once and written once (the STREAM "copy" kernel, McCalpin 1995), best of 5."""
    a = xp.ones(nbytes // 4, dtype="float32")
    b = xp.empty_like(a)
    best = float("inf")
    for _ in range(6):
        sync()
        t0 = time.perf_counter()
        b[...] = a
        sync()
        best = min(best, time.perf_counter() - t0)
    return 2 * 4 * a.size / best


def spec_bandwidth(bk):
    r"""The device's peak memory bandwidth from its attributes (memory clock × bus width × 2,
    double data rate), bytes/s; None off the GPU or where the attributes are missing."""
    if bk.name != "cupy":
        return None
    rt = bk.xp.cuda.runtime
    try:
        dev = bk.xp.cuda.Device().id
        clock_khz, bus_bits = rt.deviceGetAttribute(36, dev), rt.deviceGetAttribute(37, dev)  # memory clock, bus width
    except Exception:
        return None
    return 2.0 * clock_khz * 1e3 * bus_bits / 8 if clock_khz and bus_bits else None


def bandwidth(c):
    r"""Each ULA row's fraction of the bandwidth bound. A step must read x and write x' at least
    once (noise can be made in registers, the score fused), so

    .. math:: t_\min = \frac{2\,n\,d\,b\,T}{B}, \qquad \text{fraction} = t_\min / t

    for n chains of dimension d, b bytes a number, T steps, bandwidth B: the device's peak (its
    attributes) and a measured copy (:func:`copy_bandwidth`); the roofline bound of Williams,
    Waterman & Patterson (2009)."""
    from .. import backends

    bk = backends.get(c.backend)
    measured = copy_bandwidth(bk.xp, bk.synchronize, 2**22 if c.dry_run else 2**31)
    rows, seen = [], set()
    for name, dtype, units, ms, *_ in c.results["bench"]["rows"]:
        d = next((dim for prefix, dim, _ in ULA_ROWS if name.startswith(prefix)), None)
        if d is None or (name, dtype) in seen:
            continue
        seen.add((name, dtype))
        nbytes = 2 * units * d * (4 if dtype == "float32" else 8)  # units = chains × steps
        row = {"workload": name, "dtype": dtype, "ms": ms, "bytes": nbytes,
               "fraction_of_copy": nbytes / (ms * 1e-3 * measured)}
        peak = spec_bandwidth(bk)
        if peak:
            row["fraction_of_peak"] = nbytes / (ms * 1e-3 * peak)
        rows.append(row)
    c.results["bandwidth"] = {"copy_GBps": measured / 1e9, "peak_GBps": (spec_bandwidth(bk) or 0) / 1e9 or None,
                              "rows": rows}
    c.write("bandwidth.json", c.results["bandwidth"])


def mnist(c):
    r"""The GPU images run of ``tools/gpu-check.sh`` (its step 3, ``refscore images mnist --backend
    cupy`` into ``out/mnist``): its timings and verdicts, read from its ``results.json``. The U-Net's
    training step and batch-256 forward against PyTorch are rows of :func:`bench`.

    .. math:: \text{steps/s} = \frac{\text{training steps}}{t_{\text{train}}}
    """
    path = os.path.join(c.out, "mnist", "results.json")
    if not os.path.isfile(path):
        c.results["mnist"] = {"skipped": "no mnist/results.json: the images run (tools/gpu-check.sh step 3) did not "
                                         "run or did not finish; its line above says why"}
        return
    with open(path) as f:
        r = json.load(f)
    sec, st = r["seconds"], r["settings"]
    c.results["mnist"] = {"backend": st["backend"], "steps": st["steps"], "seconds": sec,
                          "steps_per_s": st["steps"] / sec["train"] if sec["train"] > 0 else None,
                          "verdicts": r["metrics"]["verdicts"], "passed": r["metrics"]["passed"]}


STEPS = (environment, tests, bench, bandwidth, mnist)


def _pick(rows, prefix, dtype, ref):
    for name, dt, *_, label, _, ratio in rows:
        if name.startswith(prefix) and dt == dtype and label.startswith(ref):
            return ratio
    return None


def summary_line(c):
    r"""The one line printed last: status, device, tests, the headline ratios, time, folder."""
    word = ("OK" if c.status == 0 else "FAILED" if c.status == 1 else "COULD NOT RUN") + (" (dry run)" if c.dry_run else "")
    parts = [f"gpu-check {word}", f"device {c.results.get('environment', {}).get('device', '?')}"]
    t = c.results.get("tests", {})
    if "passed" in t:
        parts.append(f"tests {t['passed']} passed, {t['failures'] + t['errors']} failed, {t['skipped']} skipped")
    rows = c.results.get("bench", {}).get("rows", [])
    for prefix, short in (("SSM-VR", "SSM-VR"), ("ULA, GMM", "ULA-GMM")):
        r = [f"{dt} {_pick(rows, prefix, dt, 'PyTorch'):.2f}x" for dt in ("float64", "float32")
             if _pick(rows, prefix, dt, "PyTorch") is not None]
        if r:
            parts.append(f"{short} vs PyTorch {' / '.join(r)}")
    bw = [r for r in c.results.get("bandwidth", {}).get("rows", []) if r["workload"].startswith("ULA, GMM")]
    if bw:
        parts.append("ULA-GMM bandwidth " + " / ".join(
            f"{r['dtype']} {r.get('fraction_of_peak', r['fraction_of_copy']):.1%} of "
            f"{'peak' if 'fraction_of_peak' in r else 'copy'}" for r in bw))
    m = c.results.get("mnist", {})
    if "seconds" in m:
        parts.append(f"images mnist {m['seconds']['total']:.0f} s ({m['steps']} steps, "
                     f"{'targets met' if m['passed'] else 'targets missed'})")
    parts.append(f"{time.perf_counter() - c.t0:.0f} s, files in {c.out}")
    return "; ".join(parts)


def run(out="gpu-output", dry_run=False, repo=None):
    r"""Run :data:`STEPS` in order, write ``summary.json`` and print the one-line summary last.
    Returns the exit status (0 passed, 1 failed, 2 could not run). A step that raises is a
    failure of that step; the check goes on, so one broken step never hides the others."""
    import traceback

    repo = os.path.abspath(repo or os.getcwd())
    os.makedirs(out, exist_ok=True)
    c = Check(os.path.abspath(out), dry_run, repo)
    for step in STEPS:
        if c.no_device:  # nothing else can run
            break
        try:
            step(c)
        except Exception as e:  # report and go on
            c.results[step.__name__] = {"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()}
            c.fail(1, f"step {step.__name__} failed: {type(e).__name__}: {e}")
    line = summary_line(c)
    c.write("summary.json", {"status": c.status, "line": line, "seconds": time.perf_counter() - c.t0,
                             **{k: v for k, v in c.results.items() if k != "bench"}})
    print(line)
    return c.status


def main(argv=None):
    r"""``python -m refscore.apps.bench_gpu [--out DIR] [--dry-run] [--repo DIR]``."""
    p = argparse.ArgumentParser(prog="refscore.apps.bench_gpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="gpu-output", help="output folder (default gpu-output/)")
    p.add_argument("--dry-run", action="store_true", help="the same steps on the CPU, strict backend, tiny sizes")
    p.add_argument("--repo", default=None, help="the repository root holding tests/ (default: the current folder)")
    a = p.parse_args(argv)
    return run(a.out, a.dry_run, a.repo)


if __name__ == "__main__":
    sys.exit(main())
