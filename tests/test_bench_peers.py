"""`refscore bench --peers` (issue 25): installed peers are timed beside refscore, absent ones are
skipped with the reason and the install line; no peer is imported anywhere else. Speed is never
asserted here (benchmarks only): the tests use stand-in peers so that they run in a second."""
import json
import pathlib
import re

import numpy as np

from refscore.apps import bench_peers, cli

TINY = {"n_chains": 100, "ula_steps": 3}


def fake_installed(ctx):
    x0 = np.zeros((ctx.n_chains, 2))
    return lambda: x0 + 1.0


def fake_absent(ctx):
    import refscore_no_such_peer  # noqa: F401

    return lambda: None


def test_installed_peers_are_timed_and_absent_ones_skipped_with_the_install_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench_peers, "PEERS", (("stand-in", fake_installed, "stand-in"),
                                               ("missing", fake_absent, "missing-pkg")))
    assert bench_peers.run_peers(out=str(tmp_path), repeats=1, sizes=TINY) == 0
    res = json.loads((tmp_path / "peers.json").read_text())
    names = [(r[0], r[1]) for r in res["rows"]]
    assert names == [(dt, n) for dt in ("float64", "float32") for n in ("refscore", "stand-in")]
    assert all(r[3] > 0 for r in res["rows"]) and [r[4] for r in res["rows"]].count("fastest peer") == 2
    assert any("missing (float32): not installed (refscore_no_such_peer); pip install missing-pkg" in s
               for s in res["skipped"])
    assert "| float32 | stand-in |" in capsys.readouterr().out


def test_the_command_line_flag_runs_the_peer_table(tmp_path, monkeypatch):
    real = bench_peers.run_peers
    monkeypatch.setattr(bench_peers, "PEERS", (("stand-in", fake_installed, "stand-in"),))
    monkeypatch.setattr(bench_peers, "run_peers", lambda **kw: real(**kw, repeats=1, sizes=TINY))
    assert cli.main(["bench", "--peers", "--quick", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "peers.json").is_file()


def test_peers_are_optional_imports_only_here():
    """No module but bench_peers names ebmkit (`ebm`), torchebm, blackjax or jax; the verifier's JAX
    adapter (refscore/conformance/jax.py) imports jax only inside its functions, when it is called."""
    root = pathlib.Path(bench_peers.__file__).resolve().parents[2]
    for path in [*root.joinpath("refscore").rglob("*.py"), *root.joinpath("backends").rglob("*.py")]:
        if path.name == "bench_peers.py":
            continue
        if path.relative_to(root).as_posix() == "refscore/conformance/jax.py":
            assert not re.findall(r"^(?:import|from)\s+jax\b", path.read_text(), re.M), "jax.py imports jax at module level"
            continue
        found = re.findall(r"^\s*(?:import|from)\s+(ebm|torchebm|blackjax|jax)\b", path.read_text(), re.M)
        assert not found, f"{path.name} imports {found}"
