"""refscore.conformance: refscore and an independent NumPy implementation pass every case; every
known fault, written here as a small implementation, fails and is named; files round-trip;
messages name the case and the quantity; sampler steps are checked against exact moments."""
import json
import math
import pathlib
import re

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import elementwise_grad, jacobian

from refscore import conformance, losses, samplers, tweedie
from refscore.apps.cli import main as cli_main
from refscore.conformance import FAULTS, check_sampler, verify
from refscore.conformance.cases import SCORE_OBJECTIVES as OBJECTIVES
from refscore.conformance.models import flat, log_prob_fn, noise_conditional_score_fn, score_fn

ROOT = pathlib.Path(__file__).resolve().parents[1]


# ---- an independent implementation (autograd for derivatives), with each known fault as a switch ----
def t_energy(model):
    if model["kind"] == "quadratic":
        return lambda x: 0.5 * anp.sum((x @ model["A"]) * x, axis=1) - x @ model["b"]
    w = model["weights"]

    def E(x):
        for W, c in zip(w[0:-2:2], w[1:-2:2]):
            x = anp.logaddexp(0.0, x @ W + c)
        return (x @ w[-2] + w[-1])[:, 0]
    return E


def t_score(model, level=None):
    if model["kind"] == "gaussian_family":
        mu, S, d = model["mean"], model["cov"], len(model["mean"])
        ve = model["parametrization"] == "ve"
        m = mu if ve else np.sqrt(1 - level) * mu
        C = S + level**2 * np.eye(d) if ve else (1 - level) * S + level * np.eye(d)
        return lambda x: -np.linalg.solve(C, (x - m).T).T
    E = t_energy(model)
    return elementwise_grad(lambda x: -anp.sum(E(x)))


def t_jac(model, X):
    s = t_score(model)
    return np.stack([jacobian(lambda xi: s(xi[None])[0])(xi) for xi in X])  # (n, d, d)


def t_reduce(c, T, fault):
    """Sum of the per-feature terms T (n, d); the faults reduce it wrongly."""
    if fault == "extra 1/d":
        return T.mean(1)
    if fault == "last-axis-only sum":
        return T.reshape(c["x"].shape).sum(-1).reshape(len(T), -1).mean(1)
    return T.sum(1)


def t_esm(c, f):
    X = flat(c["x"])
    s = t_score(c["model"])(X) * (-1 if f == "score sign (+∇E)" else 1)
    return t_reduce(c, (1.0 if f == "missing ½" else 0.5) * (s - t_score(c["target"])(X)) ** 2, f)


def t_ism(c, f):
    X = flat(c["x"])
    s, diag = t_score(c["model"])(X), np.diagonal(t_jac(c["model"], X), axis1=1, axis2=2)
    half = 1.0 if f in ("missing ½", "notes' convention (no ½)") else 0.5
    tr_w = {"trace divided by d": 1 / X.shape[1], "trace sign": -1.0, "notes' convention (no ½)": 2.0}.get(f, 1.0)
    return t_reduce(c, half * s**2 + tr_w * diag, f)


def t_ssm(c, f):
    """SSM written as PyTorch code writes it (dot products by a reduction, the gradient of their sum
    by autograd), on image-shaped x; the faults change the reduction or a term."""
    x, n = c["x"], len(c["x"])
    score = t_score(c["model"])
    s_img = lambda y: score(anp.reshape(y, (n, -1))).reshape(x.shape)  # noqa: E731
    red = {"last-axis-only sum": lambda a: anp.sum(a, -1),          # (n, R...): rows of the last axis
           "extra 1/d": lambda a: anp.mean(anp.reshape(a, (n, -1)), -1)}.get(
        f, lambda a: anp.sum(anp.reshape(a, (n, -1)), -1))
    vr = bool(c["variance_reduced"]) != (f == "variance reduction swapped")
    half = 1.0 if f == "missing ½" else 0.5
    tw = {"trace term divided by d": 1 / flat(x).shape[1], "trace sign": -1.0}.get(f, 1.0)
    total = 0.0
    for v in c["v"]:
        if f == "unit-sphere probes":
            v = v / np.linalg.norm(v.reshape(n, -1), axis=1).reshape((n,) + (1,) * (x.ndim - 1))
        s = s_img(x)
        sv = red(v * s)
        gsv = elementwise_grad(lambda y: anp.sum(red(v * s_img(y))))(x)
        second = half * red(s * s) if vr else half * sv**2
        per = tw * red(v * gsv) + second
        total = total + per.reshape(n, -1).mean(1)
    return total / (1 if f == "sum over projections" else len(c["v"]))


def t_dsm_terms(score, X, z, sigma, f):
    xt = X + sigma * z
    target = (xt - X) / sigma ** (1 if f == "σ for σ²" else 2) * (-1 if f == "DSM target sign" else 1)
    return (1.0 if f == "missing ½" else 0.5) * (score(X if f == "score at clean x" else xt) + target) ** 2


def t_dsm(c, f):
    return t_reduce(c, t_dsm_terms(t_score(c["model"], c["sigma"]), flat(c["x"]), flat(c["z"]), c["sigma"], f), f)


def t_ncsn(c, f):
    sq = c["weighting"] == "sigma2"
    lam = {"weight σ for σ²": (lambda s: s if sq else 1.0),
           "weighting ignored": (lambda s: 1.0 if sq else s * s)}.get(f, lambda s: s * s if sq else 1.0)
    T = sum(lam(sig) * t_dsm_terms(t_score(c["model"], sig) if c["model"]["kind"] == "gaussian_family"
                                   else t_score(c["model"]), flat(c["x"]), flat(z), sig, f)
            for sig, z in zip(c["sigmas"], c["z"]))
    return t_reduce(c, T / (1 if f == "sum over levels" else len(c["sigmas"])), f)


def t_ncsn_sampled(c, f):
    sig = np.asarray(c["sigmas"])[c["level_index"]]  # (n,): one level per example
    sq = c["weighting"] == "sigma2"
    lam = (sig if f == "weight σ for σ²" else sig**2) if sq else np.ones_like(sig)
    X, z = flat(c["x"]), flat(c["z"])
    if c["model"]["kind"] == "gaussian_family":
        xt = X + sig[:, None] * z
        s = np.stack([t_score(c["model"], k)(r[None])[0] for k, r in zip(sig, xt)])
        score = lambda y: s  # noqa: E731  (called once, at x̃)
    else:
        score = t_score(c["model"])
    T = lam[:, None] * t_dsm_terms(score, X, z, sig[:, None], f)
    return t_reduce(c, T, f) / (len(c["sigmas"]) if f == "averaged over levels (1/L)" else 1)


def t_vp(c, f):
    X, b = flat(c["x"]), c["beta"]
    xp = np.sqrt(1 - b) * X + np.sqrt(b) * flat(c["eps"])
    s = t_score(c["model"], b)(xp)
    coef = {"score-term sign": -b, "√β for β": np.sqrt(b)}.get(f, b)
    T = (xp + coef * s - (X if f == "missing √(1−β)" else np.sqrt(1 - b) * X)) ** 2
    return t_reduce(c, T * (0.5 if f == "added ½" else 1.0), f)


def t_tweedie(c, f):  # returns the points (n, *shape)
    y, sig = flat(c["x"]), c["sigma"]
    s = t_score(c["model"], sig)(y)
    return (y + {"σ for σ²": sig, "score sign": -sig**2}.get(f, sig**2) * s).reshape(c["x"].shape)


def t_tweedie_vp(c, f):  # returns the squared norms (n,)
    y, b = flat(c["x"]), c["beta"]
    s = t_score(c["model"], b)(y)
    coef = {"√β for β": np.sqrt(b), "score sign": -b}.get(f, b)
    div = {"missing 1/√(1−β)": 1.0, "1/(1−β) for 1/√(1−β)": 1 - b}.get(f, np.sqrt(1 - b))
    return np.sum(((y + coef * s) / div) ** 2, axis=1)


def t_langevin(c, f):
    X, h = flat(c["x"]), c["h"]
    drift = {"NCSN α read as h": h / 2, "drift sign (+∇E)": -h}.get(f, h)
    std = {"NCSN α read as h": np.sqrt(h), "noise √h": np.sqrt(h), "variance as std": 2 * h,
           "noise std h": h}.get(f, np.sqrt(2 * h))
    return X + drift * t_score(c["model"])(X) + std * flat(c["z"])


def t_mala(c, f):
    X, Y, h = flat(c["x"]), flat(c["y"]), c["h"]
    s, E = t_score(c["model"]), t_energy(c["model"])
    tau = 2 * h if f == "τ∇ drift with a 4τ denominator" else h  # BAT.jl: drift τ∇, denominator 4τ, τ = 2h
    den = {"proposal variance h": 2 * h}.get(f, 4 * tau)
    log_q = lambda to, frm, s_frm: -t_reduce(c, (to - frm - tau * s_frm) ** 2, f) / den  # noqa: E731
    back, fwd = log_q(X, Y, s(X) if f == "reverse density with s(x)" else s(Y)), log_q(Y, X, s(X))
    target = {"energy for log-density": E(Y) - E(X), "logp_new − logp_new": 0.0 * E(Y)}.get(f, E(X) - E(Y))
    if f == "no MH correction":
        return target
    ratio = target + (fwd - back if f == "swapped proposal densities" else back - fwd)
    return -ratio if f == "ratio sign" else ratio


def t_mcmc(c, f):
    """K MALA or RWMH steps on the case's z, u, written out here (each known fault as its code does it)."""
    from refscore.conformance.sampler_targets import sampler_targets

    mala, target, h = c["mode"] == "mala", sampler_targets(c["d"], (c["target"],))[0], c["h"]
    x = np.array(c["x"], dtype=float)
    lp, s = target.log_prob(x), target.score(x)

    def log_q(to, frm, s_frm):  # log N(to; frm + h s(frm), 2h I) up to its constant, or a fault's version
        drift, den = (2 * h, 8 * h) if f == "τ∇ drift, 4τ denominator" else (h, 2 * h if f == "density variance h"
                                                                                 else 4 * h)
        r = to - frm - drift * s_frm
        return -(np.mean if f == "log q averaged over dimensions" else np.sum)(r * r, axis=1) / den

    for t in range(len(c["z"])):
        z = c["z"][0] if f == "reused noise" else c["z"][t]
        u = np.full(len(x), c["u"][t][0]) if f == "one uniform for all chains" else c["u"][t]
        mean = x + h * s if mala else x
        y = mean + (2 * h if f == "noise ∝ h" else np.sqrt(2 * h) if mala else h) * z
        lp_y, s_y = target.log_prob(y), target.score(y)
        ratio = 0.0 if f == "logp_new − logp_new" else lp_y - lp
        if mala and f != "no proposal correction":
            back = log_q(x, y, s if f == "reverse density at the current gradient" else s_y)
            ratio = ratio + (log_q(y, x, s) - back if f == "swapped proposal densities" else back - log_q(y, x, s))
        lu = np.log(u)
        acc = {"always accept": np.ones(len(x), bool), "u > α": lu > ratio, "threshold sign": -lu < ratio}.get(
            f, lu < ratio)
        x = np.where(acc[:, None], y, mean if f == "rejected chain still moves" else x)
        lp = lp_y if f == "stale log-density after rejection" else np.where(acc, lp_y, lp)
        s = s_y if f == "stale score after rejection" else np.where(acc[:, None], s_y, s)
    return x


T_IMPL = {"esm": t_esm, "ism": t_ism, "ssm": t_ssm, "dsm": t_dsm, "ncsn": t_ncsn, "vp_denoising": t_vp,
          "ncsn_sampled": t_ncsn_sampled,
          "tweedie": t_tweedie, "tweedie_vp": t_tweedie_vp, "langevin_step": t_langevin, "mala_log_ratio": t_mala,
          "mala_step": t_mcmc, "rwmh_step": t_mcmc}
#: the whole-step objectives: their points are sampler states (d = 3-5), not the score objectives' shapes
STEP_OBJECTIVES = ("mala_step", "rwmh_step")
ALL_FAULTS = [(o, f.name) for o in OBJECTIVES for f in FAULTS[o]]


# ---- refscore itself, called as a user would ---------------------------------------------------
def refscore_impl(c):
    if c["objective"] in STEP_OBJECTIVES:  # refscore's reference step, run on the case as a user's step is
        from refscore.conformance.sampler_faults import reference_sampler
        from refscore.conformance.sampler_replay import run_step_on_case

        init, step = reference_sampler(c["mode"])
        step.init = init
        return run_step_on_case(step, c)[0][-1]
    o, X, m = c["objective"], flat(c["x"]), c["model"]
    stack = lambda a: a.reshape(a.shape[0], a.shape[1], -1)  # noqa: E731
    if o == "esm":
        return losses.esm(score_fn(m), X, score_fn(c["target"]), reduction="none")
    if o == "ism":
        return losses.ism(score_fn(m), X, reduction="none")
    if o == "ssm":
        return losses.ssm(score_fn(m), X, v=stack(c["v"]), variance_reduced=c["variance_reduced"], reduction="none")
    if o == "dsm":
        return losses.dsm(score_fn(m, c["sigma"]), X, c["sigma"], z=flat(c["z"]), reduction="none")
    if o == "ncsn":
        return losses.ncsn(noise_conditional_score_fn(m), X, c["sigmas"], z=stack(c["z"]),
                           weighting=c["weighting"], reduction="none")
    if o == "ncsn_sampled":
        return losses.ncsn(noise_conditional_score_fn(m), X, c["sigmas"], z=flat(c["z"]), weighting=c["weighting"],
                           reduction="none", levels="sample", level_index=c["level_index"])
    if o == "vp_denoising":
        return losses.vp_denoising(noise_conditional_score_fn(m), X, c["beta"], eps=flat(c["eps"]), reduction="none")
    if o == "tweedie":
        return tweedie.denoise(score_fn(m, c["sigma"]), X, c["sigma"])
    if o == "tweedie_vp":
        return tweedie.denoise_vp(score_fn(m, c["beta"]), X, c["beta"])
    if o == "langevin_step":
        return samplers.langevin_move(X, score_fn(m)(X), c["h"], flat(c["z"]))
    lp, s, Y, h = log_prob_fn(m), score_fn(m), flat(c["y"]), c["h"]
    return (lp(Y) - lp(X) + samplers.langevin_log_q(to=X, given=Y, score_given=s(Y), h=h)
            - samplers.langevin_log_q(to=Y, given=X, score_given=s(X), h=h))


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_refscore_passes_every_case(objective):
    report = verify(objective, refscore_impl)
    assert report.passed, str(report)
    assert len(report.rows) >= 2 and all(r.max_rel_err <= 1e-10 for r in report.rows)


@pytest.mark.parametrize("objective", ["ism", "ssm", "dsm", "mala_log_ratio"])
def test_refscore_in_float32_passes_the_float32_tolerance(objective):
    report = verify(objective, refscore_impl, dtype="float32")
    assert report.passed, str(report)
    assert max(r.max_abs_err for r in report.rows) > 1e-12  # it really ran in float32


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_independent_numpy_implementation_passes(objective):
    report = verify(objective, lambda c: T_IMPL[objective](c, None))
    assert report.passed, str(report)


@pytest.mark.parametrize("objective,fault", ALL_FAULTS, ids=[f"{o}:{f}" for o, f in ALL_FAULTS])
def test_each_known_fault_fails_and_is_named(objective, fault):
    report = verify(objective, lambda c: T_IMPL[objective](c, fault))
    assert not report.passed
    assert fault in report.faults, str(report)  # it matches on every failing case
    assert f"matches known fault: {fault} —" in str(report)


def test_every_case_shape_and_fields():
    for c in (c for c in conformance.cases() if c["objective"] in OBJECTIVES and c["objective"] not in STEP_OBJECTIVES):
        n, d = c["x"].shape[0], int(np.prod(c["x"].shape[1:]))
        assert c["expected"].shape == (n,) and c["expected"].dtype == np.float64
        assert all(np.isfinite(c["expected"]))
        assert d in (3, 4, 9)
    shapes = {c["x"].shape[1:] for c in conformance.cases() if c["objective"] in OBJECTIVES}
    steps = [c for c in conformance.cases() if c["objective"] in STEP_OBJECTIVES]
    assert len(steps) == 8 and all(c["x"].shape[1] == c["d"] >= 3 and c["h"] != 0.5 for c in steps)
    assert {(3,), (2, 2), (1, 3, 3)} <= shapes
    ssm = conformance.cases("ssm")
    assert {(c["projection"], c["variance_reduced"]) for c in ssm} >= {
        ("gaussian", True), ("gaussian", False), ("rademacher", True), ("rademacher", False)}
    assert max(len(c["v"]) for c in ssm) > 1


def test_export_round_trips_exactly(tmp_path):
    conformance.export(tmp_path)
    original = conformance.cases()
    for arrays in ("json", "npz"):
        loaded = conformance.load(tmp_path, arrays=arrays)
        assert [c["name"] for c in loaded] == [c["name"] for c in original]
        for a, b in zip(original, loaded):
            _assert_same(a, b, a["name"])
    # readable without refscore: plain json, row-major data
    raw = json.loads((tmp_path / "dsm-mlp-img.json").read_text())
    x = np.array(raw["x"]["data"]).reshape(raw["x"]["shape"])
    assert np.array_equal(x, conformance.cases("dsm")[1]["x"])
    assert "row-major" in (tmp_path / "README.md").read_text()
    assert verify("dsm", refscore_impl, cases=conformance.load(tmp_path, "dsm")).passed


def _assert_same(a, b, where):
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b), where
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (u, v) in enumerate(zip(a, b)):
            _assert_same(u, v, f"{where}.{i}")
    else:
        assert a == b and type(a) is type(b), where


def test_failure_message_names_case_and_quantity():
    report = verify("dsm", lambda c: T_IMPL["dsm"](c, "σ for σ²"))
    row = report.failures[0]
    assert row.message.startswith(f"case '{row.case}': expected differs at example")
    assert "reference" in row.message and row.case in str(report)
    maps = verify("tweedie", lambda c: t_tweedie(c, "score sign"))
    assert "expected_x differs" in maps.failures[0].message


def test_wrong_shape_and_raising_impl_name_the_case():
    with pytest.raises(ValueError, match=r"case 'esm-quadratic-flat'.*'expected'.*batch mean"):
        verify("esm", lambda c: np.mean(t_esm(c, None)))

    def boom(c):
        raise KeyError("sigma2")
    with pytest.raises(KeyError) as info:
        verify("dsm", boom)
    assert any("dsm-quadratic-flat" in note for note in info.value.__notes__)


def test_map_objectives_accept_points_or_squared_norms():
    assert verify("langevin_step", lambda c: t_langevin(c, None).reshape(c["x"].shape)).passed
    assert verify("langevin_step", lambda c: np.sum(t_langevin(c, None) ** 2, 1)).passed


def test_unknown_fault_reports_constant_factor():
    report = verify("esm", lambda c: 3.0 * t_esm(c, None))
    assert "got = 3 × reference on every example" in str(report)
    assert report.faults == []


def test_bad_arguments():
    with pytest.raises(ValueError, match="objective must be one of"):
        verify("sm", refscore_impl)
    with pytest.raises(ValueError, match="dtype must be"):
        verify("esm", refscore_impl, dtype="float16")
    with pytest.raises(TypeError, match="impl must be a callable"):
        verify("esm", 3)
    with pytest.raises(ValueError, match="include cases of"):
        verify("esm", refscore_impl, cases=conformance.cases("ism"))


# ---- CLI -----------------------------------------------------------------------------------
def test_cli_verify_and_export(tmp_path, capsys):
    mod = tmp_path / "my_tweedie.py"
    mod.write_text("def good(c):\n    y, s = c['x'].reshape(len(c['x']), -1), c['sigma']\n"
                   "    import numpy as np\n    m, C = c['model']['mean'], c['model']['cov'] + s*s*np.eye(len(y[0]))\n"
                   "    return y - s*s*np.linalg.solve(C, (y - m).T).T\n"
                   "def bad(c):\n    return 1.5 * good(c)\n")
    assert cli_main(["conformance", "verify", "tweedie", f"{mod}:good"]) == 0
    assert cli_main(["conformance", "verify", "tweedie", f"{mod}:bad"]) == 1
    out = capsys.readouterr().out
    assert "2/2 cases pass" in out and "NOT conformant" in out and "1.5 × reference" in out
    assert cli_main(["conformance", "export", str(tmp_path / "cases")]) == 0
    assert (tmp_path / "cases" / "index.json").exists()


# ---- statistical checks of sampler steps ----------------------------------------------------
def _mala(fault=None):
    lp, s = (lambda x: -0.5 * np.sum(x * x, 1)), (lambda x: -x)

    def step(x, h, rng):
        y = x + h * s(x) + np.sqrt(2 * h) * rng.standard_normal(x.shape)
        lq = lambda a, b: -np.sum((a - b - h * s(b)) ** 2, 1) / (4 * h)  # noqa: E731  log q(a|b)
        corr = {"swap": lq(y, x) - lq(x, y), "none": 0.0}.get(fault, lq(x, y) - lq(y, x))
        accept = np.log(rng.uniform(size=len(x))) < lp(y) - lp(x) + corr
        return np.where(accept[:, None], y, x)
    return step


def _refscore_mala(x, h, rng):
    lp, s = (lambda x: -0.5 * np.sum(x * x, 1)), (lambda x: -x)
    return samplers.mala_step(samplers.mala_init(lp, x, s), lp, s, h, rng)[0].position


def test_sampler_checks_pass_for_refscore():
    mala = check_sampler(_refscore_mala, "mala", h=0.6, d=2, n_chains=5000, n_steps=10)
    ula = check_sampler(lambda x, h, rng: samplers.langevin_step(x, lambda y: -y, h, rng), "ula",
                        h=0.4, n_chains=5000, n_steps=10)
    assert mala.passed and ula.passed, f"{mala}\n{ula}"
    # the exact acceptance (quadrature) is what refscore's MALA measures, within 5 SE
    assert mala.rows[2].expected == pytest.approx(conformance.mala_acceptance_gaussian(0.6, 2)[0])


@pytest.mark.parametrize("fault,failing", [("swap", "acceptance rate"), ("none", "E|x|^2/d (variance)")])
def test_sampler_checks_catch_faulty_mala(fault, failing):
    report = check_sampler(_mala(fault), "mala", h=0.6, n_chains=5000, n_steps=10)
    assert not report.passed
    assert failing in [r.quantity for r in report.rows if not r.passed], str(report)


def test_sampler_check_catches_ula_noise_sqrt_h():
    step = lambda x, h, rng: x - h * x + np.sqrt(h) * rng.standard_normal(x.shape)  # noqa: E731
    report = check_sampler(step, "ula", h=0.4, n_chains=5000, n_steps=10)
    assert not report.passed and not report.rows[1].passed


def test_exact_mala_acceptance_matches_simulation():
    """The quadrature against one simulated MALA step from N(0, 1), 4·10^5 draws, 5 SE."""
    h, n = 0.8, 400_000
    rng = np.random.default_rng(3)
    x, z = rng.standard_normal((2, n))
    y = (1 - h) * x + np.sqrt(2 * h) * z
    log_r = 0.5 * (x * x - y * y) - (x - (1 - h) * y) ** 2 / (4 * h) + (y - (1 - h) * x) ** 2 / (4 * h)
    a = np.minimum(1.0, np.exp(log_r))
    exact, _ = conformance.mala_acceptance_gaussian(h)
    assert abs(a.mean() - exact) <= 5 * a.std(ddof=1) / math.sqrt(n)


# ---- the docs chapter's PyTorch example ----------------------------------------------------
def test_docs_pytorch_example_runs():
    torch = pytest.importorskip("torch", reason="torch is optional (not a refscore dependency)")
    assert torch is not None
    text = (ROOT / "docs" / "conformance.md").read_text()
    code = re.search(r"```py\n(# PyTorch.*?)```", text, re.S).group(1)
    ns = {}
    exec(compile(code, "conformance.md[torch]", "exec"), ns)
    assert ns["report"].passed
