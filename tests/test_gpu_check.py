"""`tools/gpu-check.sh --dry-run` (issue 25): the GPU check's every step, on the CPU with the strict
stand-in backend and tiny sizes, exactly as the GPU machine will run it, wheels included."""
import hashlib
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "gpu-check.sh"


def _run(*args, **env):
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHON=sys.executable, **env))


def test_the_dry_run_passes_writes_its_files_and_ends_with_one_summary_line(tmp_path):
    out = tmp_path / "gpu-output"
    p = _run("--dry-run", "--out", str(out), GPU_CHECK_FORCE_WHEELS="1")  # the carried wheels install too
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    last = p.stdout.strip().splitlines()[-1]
    assert last.startswith("gpu-check OK (dry run); device strict"), last
    assert "gpu-check: images run not part of the dry run" in p.stdout  # step 3 says why it did not run
    assert re.search(r"tests [1-9]\d* passed, 0 failed, 0 skipped", last), last
    for name in ("env.json", "tests.xml", "tests.log", "bench/bench.json", "bandwidth.json", "summary.json"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == 0 and summary["line"] == last
    assert (out / "site" / "autograd").is_dir() and (out / "site" / "refscore" / "backends" / "box_muller.py").is_file()
    rows = json.loads((out / "bandwidth.json").read_text())["rows"]
    assert {r["dtype"] for r in rows} == {"float32", "float64"} and all(r["fraction_of_copy"] > 0 for r in rows)


def test_a_wrong_argument_is_exit_status_2_with_a_message():
    p = _run("--gpu")
    assert p.returncode == 2 and "unknown argument '--gpu'" in p.stderr


@pytest.mark.parametrize("line", [l for l in (ROOT / "tools/wheels/README.md").read_text().splitlines()
                                  if l.startswith("| ") and l.endswith(" |") and ".whl" in l])
def test_every_carried_wheel_is_listed_with_its_licence_and_hash(line):
    name, _, licence, digest = [c.strip() for c in line.strip("|").split("|")]
    wheel = ROOT / "tools" / "wheels" / name
    assert wheel.is_file() and hashlib.sha256(wheel.read_bytes()).hexdigest() == digest
    assert re.search(r"MIT|Apache|BSD", licence)


def test_no_wheel_is_carried_without_its_row():
    listed = (ROOT / "tools/wheels/README.md").read_text()
    assert all(w.name in listed for w in (ROOT / "tools" / "wheels").glob("*.whl"))


def test_the_mnist_step_reads_the_images_run_of_step_3(tmp_path):
    from refscore.apps import bench_gpu

    c = bench_gpu.Check(str(tmp_path), dry_run=True, repo=str(ROOT))
    bench_gpu.mnist(c)
    assert "skipped" in c.results["mnist"] and "step 3" in c.results["mnist"]["skipped"]
    (tmp_path / "mnist").mkdir()
    run = {"seconds": {"train": 50.0, "total": 80.0}, "settings": {"backend": "cupy", "steps": 7000},
           "metrics": {"verdicts": {"no diverged chain": True}, "passed": True}}
    (tmp_path / "mnist" / "results.json").write_text(json.dumps(run))
    bench_gpu.mnist(c)
    assert c.results["mnist"]["steps_per_s"] == 140.0 and c.results["mnist"]["passed"]
    assert "images mnist 80 s (7000 steps, targets met)" in bench_gpu.summary_line(c)


def test_the_script_runs_the_images_command_on_the_gpu_where_it_can():
    text = SCRIPT.read_text()
    assert 'refscore images mnist --backend cupy --out "$OUT/mnist"' in text
    p = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
