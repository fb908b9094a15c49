"""Loud failures (issue 11): solvers never hang, samplers report divergence, callables' outputs
and every public argument are checked, diagnostics refuse bad chains, the CLI fails in one line.
Each test asserts the exception (or warning) type and the words of its message."""
import math
import signal
import warnings
from contextlib import contextmanager

import numpy as np
import pytest

from refscore import diagnostics, samplers, sde as sdelib, tweedie
from refscore.apps import cli
from refscore.energies import Gaussian

STD2 = Gaussian([0.0, 0.0], np.eye(2))
X5 = np.random.default_rng(0).normal(size=(5, 2))


@contextmanager
def within_seconds(seconds):
    """Fail (instead of hanging the suite) if the block runs longer than ``seconds``."""
    def on_alarm(signum, frame):
        raise TimeoutError(f"did not return within {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# ----- solvers never hang, never return silent NaN -------------------------------------------
NAN_SCORE = lambda x, t: x * np.nan  # noqa: E731
LATE_NAN_SCORE = lambda x, t: -x if t > 0.5 else x * np.nan  # noqa: E731


@pytest.mark.parametrize("solve", [
    lambda score: sdelib.probability_flow_sample(sdelib.VPSDE(), score, X5),
    lambda score: sdelib.log_likelihood(sdelib.VPSDE(), score, X5),
], ids=["pf-ode", "log-likelihood"])
@pytest.mark.parametrize("score,t_words", [(NAN_SCORE, "t=[01]"), (LATE_NAN_SCORE, "t=0")], ids=["nan", "late-nan"])
def test_ode_with_nan_score_stops_within_seconds_naming_t_and_row(solve, score, t_words):
    with within_seconds(20), pytest.raises(ValueError, match=rf"non-finite \(NaN\) at {t_words}.*first bad row 0"):
        solve(score)


def test_ode_evaluation_cap():
    with within_seconds(20), pytest.raises(RuntimeError, match="more than max_evals=5 right-hand-side evaluations"):
        sdelib.probability_flow_sample(sdelib.VPSDE(), lambda x, t: -x, X5, max_evals=5)
    with pytest.raises(RuntimeError, match="max_evals=5"):
        sdelib.log_likelihood(sdelib.VPSDE(), lambda x, t: -x, X5, max_evals=5)


def test_time_bounds_are_validated():
    sde = sdelib.VPSDE()
    with pytest.raises(ValueError, match=r"need 0 <= t_min < t_max <= 1, got t_min=-0.1"):
        sdelib.probability_flow_sample(sde, lambda x, t: -x, X5, t_min=-0.1)
    with pytest.raises(ValueError, match=r"t_min=0.5, t_max=0.5"):
        sdelib.log_likelihood(sde, lambda x, t: -x, X5, t_min=0.5, t_max=0.5)
    with pytest.raises(ValueError, match=r"t_max=1.5"):
        sdelib.reverse_sde_sample(sde, lambda x, t: -x, X5, np.random.default_rng(0), t_max=1.5)
    with pytest.raises(TypeError, match="t_min must be a real number, got True"):
        sdelib.probability_flow_sample(sde, lambda x, t: -x, X5, t_min=True)
    with pytest.raises(TypeError, match="t must be a real number"):
        sde.drift(X5, "0.5")
    with pytest.raises(ValueError, match=r"t must be a scalar or shape \(5,\), one time per row of x, got shape \(3,\)"):
        sde.drift(X5, np.zeros(3))
    with pytest.raises(ValueError, match="t must be finite"):
        sde.diffusion(float("nan"))
    with pytest.raises(TypeError, match="sde must be a refscore.sde.SDE"):
        sdelib.log_likelihood("VP", lambda x, t: -x, X5)


# ----- the reverse SDE reports like langevin ---------------------------------------------------
def test_reverse_sde_nan_score_is_refused_at_the_boundary():
    with pytest.raises(ValueError, match=r"score_fn\(x1, t=1.0\) contains NaN \(first non-finite entry in row 0\)"):
        sdelib.reverse_sde_sample(sdelib.VPSDE(), NAN_SCORE, X5, np.random.default_rng(0), n_steps=10)


def test_reverse_sde_late_nan_and_zero_score_with_corrector_raise():
    rng = np.random.default_rng(1)
    with pytest.raises(FloatingPointError, match="every one of the 5 reverse-SDE chains diverged"):
        sdelib.reverse_sde_sample(sdelib.VPSDE(), LATE_NAN_SCORE, X5, rng, n_steps=10)
    with pytest.raises(FloatingPointError, match="zero score makes the corrector step infinite"):
        sdelib.reverse_sde_sample(sdelib.VESDE(), lambda x, t: 0.0 * x, X5, rng, n_steps=5, corrector_steps=1)


def test_reverse_sde_partial_divergence_warns_and_is_in_info():
    def score(x, t):  # rows 0 and 1 run away (a huge repulsive score), the rest are a Gaussian's
        s = -x.copy()
        s[:2] = 1e9 * x[:2]
        return s

    with pytest.warns(RuntimeWarning, match="2 of 5 reverse-SDE chains diverged"):
        _, info = sdelib.reverse_sde_sample(sdelib.VPSDE(), score, X5, np.random.default_rng(2), n_steps=5,
                                            return_info=True)
    assert info["n_diverged"] == 2 and info["diverged"].tolist() == [True, True, False, False, False]


# ----- samplers: runaway = diverged, partial warns, final denoise checked, never-accepting warns ----------
def test_runaway_finite_chains_are_diverged():
    rng = np.random.default_rng(3)
    c = np.array([[1.0], [1.0], [5.0], [1.0]])  # h c = 2.5 for row 2: x' = -1.5 x + noise, finite but runaway
    with pytest.warns(RuntimeWarning, match="1 of 4 ULA chains diverged"):
        x, info = samplers.langevin(lambda x: -c * x, np.ones((4, 1)), 0.5, 60, rng)
    assert np.all(np.isfinite(x)) and info["diverged"].tolist() == [False, False, True, False]
    with pytest.raises(FloatingPointError, match="every one of the 4 ULA chains diverged"):
        samplers.langevin(lambda x: -5 * x, np.ones((4, 1)), 0.5, 60, rng)


def test_annealed_runaway_and_partial_divergence():
    rng = np.random.default_rng(4)
    with pytest.raises(FloatingPointError, match="every one of the 5 annealed Langevin chains diverged"):
        samplers.annealed_langevin(lambda x, s: -x / s**2, X5, [1.0, 0.5], 0.6, 40, rng)
    with pytest.warns(RuntimeWarning, match="1 of 5 annealed Langevin chains diverged"):
        _, info = samplers.annealed_langevin(lambda x, s: np.where(np.arange(5)[:, None] == 3, 4.0, -1.0) * x / s**2,
                                             X5, [1.0, 0.5], 0.01, 40, rng)
    assert info["diverged"].tolist() == [False, False, False, True, False]


def test_annealed_final_denoise_is_checked():
    calls = {"n": 0}

    def score(x, s):
        calls["n"] += 1
        return -x / s**2 if calls["n"] <= 6 else np.full_like(x, np.nan)  # 2 levels x 3 steps, then NaN

    with pytest.raises(FloatingPointError, match="every one of the 5 annealed Langevin chains diverged"):
        samplers.annealed_langevin(score, X5, [1.0, 0.5], 0.01, 3, np.random.default_rng(5), final_denoise=True)


def test_annealed_progress_bar_shows_sigma(monkeypatch):
    shown = []

    class Bar:
        def update(self, k=1):
            pass

        def set_postfix(self, **kw):
            shown.append(kw["sigma"])

        def close(self):
            pass

    monkeypatch.setattr("refscore.samplers.chain.progress", lambda *a, **k: Bar())
    samplers.annealed_langevin(lambda x, s: -x / s**2, X5, [2.0, 1.0, 0.5], 0.01, 4, np.random.default_rng(6),
                               progress=True)
    assert shown == ["2", "1", "0.5"]


@pytest.mark.parametrize("run", [
    lambda lp, rng: samplers.mala(lp, X5, 1e4, 5, rng, score_fn=lambda x: -x),
    lambda lp, rng: samplers.rwmh(lp, X5, 1e4, 5, rng),
], ids=["mala", "rwmh"])
def test_chains_that_never_accept_warn(run):
    with pytest.warns(RuntimeWarning, match="5 of 5 .* chains never accepted a proposal in 5 steps"):
        run(lambda x: -0.5 * np.sum(x * x, 1), np.random.default_rng(7))


# ----- what user callables return is checked ---------------------------------------------------
@pytest.mark.parametrize("call,msg", [
    (lambda f: samplers.langevin(f, X5, 0.1, 3, np.random.default_rng(0)), r"\(5, 2\), got shape \(1, 2\)"),
    (lambda f: samplers.annealed_langevin(lambda x, s: f(x), X5, [1.0], 0.1, 2, np.random.default_rng(0)),
     r"\(5, 2\), got shape \(1, 2\)"),
    (lambda f: tweedie.denoise(f, X5, 0.5), r"\(5, 2\), got shape \(1, 2\)"),
    (lambda f: tweedie.denoise_vp(f, X5, 0.5), r"\(5, 2\), got shape \(1, 2\)"),
    (lambda f: sdelib.reverse_sde_sample(sdelib.VPSDE(), lambda x, t: f(x), X5, np.random.default_rng(0), n_steps=3),
     r"\(5, 2\), got shape \(1, 2\)"),
    (lambda f: sdelib.probability_flow_sample(sdelib.VPSDE(), lambda x, t: f(x), X5), r"\(5, 2\), got shape \(1, 2\)"),
], ids=["langevin", "annealed", "denoise", "denoise_vp", "reverse_sde", "pf_ode"])
def test_a_1_by_d_score_is_never_broadcast(call, msg):
    with pytest.raises(ValueError, match="score_fn must return an array of shape " + msg):
        call(lambda x: -x[:1])


def test_an_n_score_with_n_equal_d_and_scalar_log_probs_are_refused():
    x = np.eye(2)  # n == d == 2: an (n,) score would broadcast into a wrong (2, 2)
    with pytest.raises(ValueError, match=r"score_fn must return an array of shape \(2, 2\), got shape \(2,\)"):
        samplers.langevin(lambda y: -y.sum(1), x, 0.1, 3, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"log_prob_fn must return an array of shape \(2,\), got shape \(\)"):
        samplers.rwmh(lambda y: -0.5 * np.sum(y * y), x, 0.5, 3, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"log_prob_fn must return an array of shape \(2,\), got shape \(2, 1\)"):
        samplers.mala(lambda y: -0.5 * np.sum(y * y, 1, keepdims=True), x, 0.5, 3, np.random.default_rng(0))


# ----- every public argument -------------------------------------------------------------------
def test_integer_points_are_cast_and_bool_or_strings_refused():
    rng = np.random.default_rng(8)
    x, _ = samplers.langevin(lambda y: -y, np.zeros((3, 2), dtype=int), 0.1, 2, rng)
    assert x.dtype == np.float64
    assert tweedie.denoise(lambda y: -y, np.ones((3, 2), dtype=np.int32), 0.5).dtype == np.float64
    with pytest.raises(TypeError, match="x0 must hold real numbers .*got dtype bool"):
        samplers.langevin(lambda y: -y, np.zeros((3, 2), dtype=bool), 0.1, 2, rng)
    with pytest.raises(TypeError, match="step_size must be a positive number, got True"):
        samplers.langevin(lambda y: -y, X5, True, 2, rng)
    with pytest.raises(TypeError, match="step_size must be a positive number, got '0.1'"):
        samplers.mala(lambda y: -np.sum(y * y, 1), X5, "0.1", 2, rng)
    with pytest.raises(ValueError, match="n_steps must be an integer >= 0, got '10'"):
        samplers.rwmh(lambda y: -np.sum(y * y, 1), X5, 0.1, "10", rng)
    with pytest.raises(ValueError, match="keep_every must be an integer >= 1, got 0"):
        samplers.langevin(lambda y: -y, X5, 0.1, 2, rng, keep_every=0)
    with pytest.raises(ValueError, match="noise_var must be positive and finite, got -1"):
        samplers.langevin(lambda y: -y, X5, 0.1, 2, rng, noise_var=-1)
    with pytest.raises(TypeError, match="sigmas must be a 1-D sequence of positive numbers"):
        samplers.annealed_langevin(lambda y, s: -y, X5, [True, 0.5], 0.1, 2, rng)
    with pytest.raises(ValueError, match="corrector_steps must be an integer >= 0, got -1"):
        sdelib.reverse_sde_sample(sdelib.VPSDE(), lambda y, t: -y, X5, rng, corrector_steps=-1)
    with pytest.raises(ValueError, match="snr must be positive and finite, got 0"):
        sdelib.reverse_sde_sample(sdelib.VPSDE(), lambda y, t: -y, X5, rng, snr=0)
    with pytest.raises(TypeError, match="beta_min must be a positive number, got False"):
        sdelib.VPSDE(False, 2.0)


# ----- diagnostics -----------------------------------------------------------------------------
def test_diagnostics_refuse_nan_chains_and_name_stuck_chains():
    x = np.random.default_rng(9).normal(size=(100, 4))
    bad = x.copy()
    bad[50, 2] = np.nan
    for f in (diagnostics.effective_sample_size, diagnostics.split_rhat):
        with pytest.raises(ValueError, match=r"chains contain NaN or inf \(chain 2 first\)"):
            f(bad)
    stuck = x.copy()
    stuck[:, 1] = 0.3
    for f in (diagnostics.effective_sample_size, diagnostics.split_rhat):
        with pytest.raises(ValueError, match=r"1 of 4 chains are stuck \(constant over all 100 steps, chain 1 first\)"):
            f(stuck)


# ----- the command line ------------------------------------------------------------------------
def test_cli_errors_are_one_line_without_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["check", "--seed", "-1"])
    assert e.value.code == 2 and "--seed must be an integer >= 0, got -1" in capsys.readouterr().err
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert cli.main(["check", "--out", str(afile / "sub")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot be a folder" in err and "Traceback" not in err
    assert cli.main(["bench", "--backend", "nope", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("refscore: error: unknown backend 'nope'") and not (tmp_path / "b").exists()


@pytest.mark.parametrize("driver", ["langevin", "annealed_langevin"])
def test_a_nan_score_at_the_start_is_named_not_reported_as_divergence(driver):
    x0 = np.zeros((4, 2))
    nan_score = lambda x, *sigma: x * np.nan  # noqa: E731
    run = {"langevin": lambda: samplers.langevin(nan_score, x0, 0.1, 5, np.random.default_rng(0)),
           "annealed_langevin": lambda: samplers.annealed_langevin(nan_score, x0, [1.0, 0.5], 0.01, 2,
                                                                   np.random.default_rng(0))}[driver]
    with pytest.raises(ValueError, match=r"score_fn\(x0.*\) contains NaN \(first non-finite entry in row 0\)"):
        run()
