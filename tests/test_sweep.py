"""refscore.sweep (issue 23): seeds, reduction, streaming and reruns, failures, Dask identity.

The Dask tests skip, with the reason, where ``distributed`` is not installed; the rest run
everywhere (``workers=0`` is the plain in-process loop). Grids are tiny: the file runs in well
under a minute on 2 cores.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from autograd import grad

from refscore import losses, sweep
from refscore.apps.cli import main as cli_main
from refscore.energies import Gaussian
from refscore.sweep.open_questions import Q21, Q22, dsm_gaussian_fit, fisher_linear, q21_cell
from refscore.sweep.sampling import ULA_BIAS

TINY = sweep.Size({"n": (200, 2000), "sigma": (0.1, 0.4)}, seeds=3, fixed={"S": [[1.0, 0.6], [0.6, 0.8]]})


def _need_dask():
    return pytest.importorskip("distributed", reason="Dask is not installed: pip install 'refscore[sweep]'",
                               exc_type=ImportError)


def _table(out, size=TINY, **kw):
    return sweep.run(Q21, out, size=size, show_progress=False, **kw)["table"]


# ---- seeds, reduction, store: no Dask needed ---------------------------------------------------
def test_cell_seed_is_numpys_spawned_child():
    child = np.random.SeedSequence(7).spawn(5)[4]
    assert np.array_equal(sweep.cell_seed(7, 4).generate_state(4), child.generate_state(4))
    assert not np.array_equal(sweep.cell_seed(7, 4).generate_state(4), sweep.cell_seed(7, 3).generate_state(4))


def test_mean_se_is_the_standard_error_of_the_mean():
    y = [1.0, 2.0, 4.0, 7.0]
    m, se = sweep.mean_se(y)
    assert m == pytest.approx(np.mean(y)) and se == pytest.approx(np.std(y, ddof=1) / 2)
    assert sweep.mean_se([3.0]) == (3.0, None)


def test_rerun_skips_finished_cells_and_a_torn_line(tmp_path):
    full = sweep.run(Q21, tmp_path, size=TINY, workers=0, show_progress=False)
    lines = (tmp_path / "cells.jsonl").read_text().splitlines()
    assert len(lines) == 12 and full["timing"]["cells_run"] == 12
    (tmp_path / "cells.jsonl").write_text("\n".join(lines[:7]) + "\n" + lines[7][:20])  # a crash mid-write
    again = sweep.run(Q21, tmp_path, size=TINY, workers=0, show_progress=False)
    assert again["timing"]["cells_run"] == 5
    assert again["table"] == full["table"]
    assert sweep.run(Q21, tmp_path, size=TINY, workers=0, show_progress=False)["timing"]["cells_run"] == 0
    with pytest.raises(ValueError, match="another sweep.*seed"):
        sweep.run(Q21, tmp_path, size=TINY, workers=0, seed=1, show_progress=False)


def test_a_failing_cell_is_reported_and_the_table_marks_it(tmp_path):
    size = TINY._replace(grid={"n": (1, 200), "sigma": (0.1,)})
    res = sweep.run(Q21, tmp_path, size=size, workers=0, show_progress=False)
    assert res["n_failed"] == 3 and [f["params"]["n"] for f in res["failed"]] == [1, 1, 1]
    assert "n must exceed the dimension" in res["failed"][0]["error"]
    bad, good = res["table"]
    assert (bad["failed"], bad["seeds"], good["failed"], good["seeds"]) == (3, 0, 0, 3)
    assert "FAILED 3" in sweep.markdown(res["table"])
    assert json.loads((tmp_path / "results.json").read_text())["failed"] == res["failed"]


def test_no_timing_inside_the_table(tmp_path):
    size = Q22.quick._replace(grid={"M": (1, 2), "steps": (3,)}, seeds=1)
    res = sweep.run(Q22, tmp_path, size=size, workers=0, show_progress=False)
    assert all("wall_s" not in row and "wall_s_se" not in row for row in res["table"])
    assert [r["wall_s"] > 0 for r in res["timing"]["per_point"]] == [True, True]
    assert [row["score_passes"] for row in res["table"]] == [3.0, 6.0]


def test_missing_dask_is_a_readable_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"refscore\[sweep\]"):
        _table(tmp_path, workers=1)


# ---- the sweeps' mathematics ----------------------------------------------------------------
def test_dsm_gaussian_fit_is_the_minimiser_of_losses_dsm():
    rng = np.random.default_rng(3)
    x, z, sigma = rng.standard_normal((500, 2)) @ np.array([[1.0, 0.0], [0.6, 0.6]]), rng.standard_normal((500, 2)), 0.3
    P = dsm_gaussian_fit(x + sigma * z, z, sigma)
    loss = lambda A: losses.dsm(lambda y: -y @ ((A + A.T) / 2), x, sigma, z=z)  # noqa: E731  symmetric P
    g = grad(loss)(P)
    assert np.max(np.abs(g)) < 1e-10 * np.max(np.abs(grad(loss)(P + 0.1)))
    assert loss(P) < loss(P + 1e-3 * np.array([[1.0, -1.0], [-1.0, 0.5]]))


def test_fisher_linear_matches_losses_esm_within_standard_errors():
    S = np.array([[1.0, 0.6], [0.6, 0.8]])
    P = np.array([[1.5, -0.2], [-0.2, 1.1]])
    x = Gaussian(np.zeros(2), S).sample(40_000, np.random.default_rng(4))
    per = losses.esm(lambda y: -y @ P, x, lambda y: -y @ np.linalg.inv(S), reduction="none")
    assert abs(per.mean() - fisher_linear(P - np.linalg.inv(S), S)) <= 5 * per.std(ddof=1) / np.sqrt(per.size)


def test_q21_error_is_bias2_plus_variance_and_bias2_is_closed_form():
    vals = [q21_cell({"n": 400, "sigma": 0.3, "S": TINY.fixed["S"]}, sweep.cell_seed(0, i)) for i in range(60)]
    cross = np.array([v["cross"] for v in vals])
    assert abs(cross.mean()) <= 5 * cross.std(ddof=1) / np.sqrt(cross.size)
    S = np.array(TINY.fixed["S"])
    assert vals[0]["bias2"] == pytest.approx(fisher_linear(np.linalg.inv(S + 0.09 * np.eye(2)) - np.linalg.inv(S), S))


def test_ula_bias_matches_the_closed_form_within_5_se(tmp_path):
    res = sweep.run(ULA_BIAS, tmp_path, quick=True, workers=0, show_progress=False)
    assert res["n_done"] == res["n_cells"]
    for row in res["summary"]["ula"]:
        assert abs(row["variance"] - row["closed_form"]) <= 5 * row["se"], row


def test_cli_list_and_errors(capsys, tmp_path):
    assert cli_main(["sweep", "list"]) == 0
    assert capsys.readouterr().out.split() == sweep.names() == ["q21-sigma", "q22-projections", "ula-bias",
                                                                "sampler-checks"]
    assert cli_main(["sweep", "q21-sigma"]) == 2
    assert "needs --out" in capsys.readouterr().err
    assert cli_main(["sweep", "nope", "--out", str(tmp_path)]) == 2
    assert "known sweeps: q21-sigma" in capsys.readouterr().err


@pytest.mark.parametrize("name", sweep.names())
def test_every_sweep_runs_quick_from_the_command_line(name, tmp_path, capsys):
    assert cli_main(["sweep", name, "--quick", "--workers", "0", "--out", str(tmp_path), "--no-progress"]) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["n_done"] == res["n_cells"] > 0 and res["n_failed"] == 0 and res["plan"]["quick"]
    assert (tmp_path / f"{name}.png").stat().st_size > 0
    assert "| status |" in capsys.readouterr().out


@pytest.mark.parametrize("name", sweep.names())
def test_every_sweep_runs_quick_on_a_two_worker_local_cluster(name, tmp_path):
    _need_dask()
    t0 = time.perf_counter()
    assert cli_main(["sweep", name, "--quick", "--workers", "2", "--out", str(tmp_path), "--no-progress"]) == 0
    assert time.perf_counter() - t0 < 60, "--quick must finish in under a minute on 2 cores"


# ---- on Dask ----------------------------------------------------------------------------------
def _slow_q21(params, seed):
    time.sleep(params["sleep"])
    return q21_cell(params, seed)


SLOW = sweep.Sweep("slow-q21", "q21 cells that take a while", _slow_q21, TINY, TINY)


@pytest.fixture(scope="module")
def client2():
    _need_dask()
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import this test file
    with sweep.connect(workers=2) as client:
        client.wait_for_workers(2, timeout=60)
        yield client


def test_one_and_two_workers_give_the_same_table(tmp_path, client2):
    reference = _table(tmp_path / "loop", workers=0)
    assert _table(tmp_path / "one", workers=1) == reference
    assert _table(tmp_path / "two", client=client2) == reference
    assert _table(tmp_path / "batched", client=client2, batch=5) == reference  # 5 cells per Dask task


def test_a_killed_worker_leaves_the_table_complete_and_identical(tmp_path, client2):
    size = TINY._replace(seeds=10, fixed={**TINY.fixed, "sleep": 0.04})
    reference = sweep.run(SLOW, tmp_path / "loop", size=size._replace(fixed={**size.fixed, "sleep": 0.0}),
                          workers=0, show_progress=False)["table"]
    pids = sorted(client2.run(os.getpid).values())
    killed = {}

    def kill_one_worker_mid_sweep():
        path = tmp_path / "dask" / "cells.jsonl"
        for _ in range(500):  # at most 5 s
            if path.exists() and len(path.read_text().splitlines()) >= 4:
                killed["done_before"] = len(path.read_text().splitlines())
                os.kill(pids[0], signal.SIGKILL)
                return
            time.sleep(0.01)

    t = threading.Thread(target=kill_one_worker_mid_sweep)
    t.start()
    res = sweep.run(SLOW, tmp_path / "dask", size=size, client=client2, show_progress=False)
    t.join(timeout=10)
    assert killed and killed["done_before"] < res["n_cells"], "the worker was not killed during the sweep"
    assert res["n_done"] == res["n_cells"] == 40 and res["n_failed"] == 0
    assert res["table"] == reference
    client2.wait_for_workers(2, timeout=60)  # the nanny restarts the killed worker


def test_failing_cells_on_dask_are_reported_and_the_rest_finish(tmp_path, client2):
    size = TINY._replace(grid={"n": (200, 1), "sigma": (0.1,)})
    res = sweep.run(Q21, tmp_path, size=size, client=client2, show_progress=False)
    assert res["n_done"] == 3 and res["n_failed"] == 3
    assert all(f["params"]["n"] == 1 and "ValueError" in f["error"] for f in res["failed"])
    assert res["table"][1]["failed"] == 3


def _spawn(args, log):
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def test_real_scheduler_and_two_dask_worker_processes(tmp_path):
    _need_dask()
    dask_cli = shutil.which("dask", path=os.path.dirname(sys.executable))
    if dask_cli is None:
        pytest.skip("no `dask` command next to this Python")
    reference = _table(tmp_path / "loop", workers=0)
    log = open(tmp_path / "dask.log", "w")
    info = tmp_path / "scheduler.json"
    procs = [_spawn([dask_cli, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                     "--scheduler-file", str(info)], log)]
    try:
        for _ in range(300):  # at most 30 s
            if info.exists() and info.stat().st_size > 0:
                break
            time.sleep(0.1)
        else:
            pytest.skip(f"the dask scheduler did not start within 30 s: {(tmp_path / 'dask.log').read_text()[-500:]}")
        address = json.loads(info.read_text())["address"]
        procs += [_spawn([dask_cli, "worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--no-dashboard",
                          "--nworkers", "1"], log) for _ in range(2)]
        import distributed

        with distributed.Client(address, timeout=30) as c:
            c.wait_for_workers(2, timeout=60)
        assert _table(tmp_path / "remote", scheduler=address) == reference
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()
