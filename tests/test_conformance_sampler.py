"""Sampler exactness (issue 33): the targets' exact draws and moments, correct samplers pass (refscore's
own and a user's), every classic sampler bug written as a user writes it is caught and named, the
exact step replay, and the command line."""
import itertools
import math

import numpy as np
import pytest

from refscore import samplers
from refscore.apps.cli import main as cli_main
from refscore.conformance import SAMPLER_FAULTS, check_sampler_exactness, check_sampler_step
from refscore.conformance.sampler_faults import faults_of_mode
from refscore.conformance.sampler_replay import step_cases, step_reference
from refscore.conformance.sampler_targets import TARGET_NAMES, sampler_targets


# ---- the targets -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", TARGET_NAMES)
def test_exact_draws_have_the_exact_moments(name):
    """2·10^5 exact draws: every test function's mean within 5 standard errors of its exact value."""
    t = sampler_targets(4, (name,))[0]
    f = t.moments(t.draw(np.random.default_rng(11), 200_000))
    z = np.abs(f.mean(0) - t.expected) / (f.std(0, ddof=1) / math.sqrt(len(f)))
    assert np.all(z < 5), dict(zip(t.moment_names, np.round(z, 2)))


@pytest.mark.parametrize("name", TARGET_NAMES)
def test_score_is_the_gradient_of_the_log_density(name):
    t = sampler_targets(3, (name,))[0]
    x, eps = t.draw(np.random.default_rng(2), 5), 1e-6
    fd = np.stack([(t.log_prob(x + eps * e) - t.log_prob(x - eps * e)) / (2 * eps) for e in np.eye(3)], 1)
    assert np.allclose(t.score(x), fd, rtol=1e-6, atol=1e-6)


def test_ula_law_solves_the_lyapunov_equation():
    """V = (I − hP) V (I − hP) + 2h I for x' − μ = (I − hP)(x − μ) + √(2h) z (the stationary covariance)."""
    t, h = sampler_targets(3, ("aniso",))[0], 0.15
    law = t.law("ula", h)
    x = t.draw(np.random.default_rng(0), 3)
    prec = -np.linalg.lstsq(x - t.expected[:3], t.score(x), rcond=None)[0]  # s = −(x − μ) P
    a = np.eye(3) - h * prec
    v = law.expected[3:]  # E x_j x_k = V_jk + μ_j μ_k, j <= k
    mu = law.expected[:3]
    V = np.zeros((3, 3))
    for (j, k), e in zip([(j, k) for j in range(3) for k in range(j, 3)], v):
        V[j, k] = V[k, j] = e - mu[j] * mu[k]
    assert np.allclose(V, a @ V @ a + 2 * h * np.eye(3), atol=1e-12)
    with pytest.raises(ValueError, match="stable only for"):
        t.law("ula", 2.0)


# ---- a user's steps, written as sampler code is written, with one planted bug each ---------------
class UserMH:
    """A user's MALA or RWMH carrying (x, log p, grad log p) in a dict, with an optional bug."""

    def __init__(self, mode, bug=None):
        self.mode, self.bug, self.cache = mode, bug, {}

    def init(self, x, target):
        return {"x": x, "lp": target.log_prob(x), "g": target.score(x)}

    def log_q(self, to, frm, g_frm, h):  # log q(to | frm) of the Langevin proposal
        tau = 2 * h
        if self.bug == "τ∇ drift, 4τ denominator":
            return -np.sum((to - frm - tau * g_frm) ** 2, 1) / (4 * tau)
        sq = (to - frm - h * g_frm) ** 2
        if self.bug == "log q averaged over dimensions":
            return -np.mean(sq, 1) / (2 * tau)
        return -np.sum(sq, 1) / (2 * (h if self.bug == "density variance h" else tau))

    def __call__(self, state, h, rng, target):
        x, lp, g = state["x"], state["lp"], state["g"]
        if self.bug == "reused noise":  # drawn once, kept for every later step
            if x.shape not in self.cache:
                self.cache[x.shape] = rng.standard_normal(x.shape)
            eps = self.cache[x.shape]
        else:
            eps = rng.standard_normal(x.shape)
        start = x.copy()
        if self.mode == "mala":
            if self.bug == "rejected chain still moves":
                start += h * g  # the in-place drift, then the noise on top
                prop = start + math.sqrt(2 * h) * eps
            else:
                prop = x + h * g + (2 * h if self.bug == "noise ∝ h" else math.sqrt(2 * h)) * eps
        else:
            prop = x + h * eps
        lp_new, g_new = target.log_prob(prop), target.score(prop)
        log_r = (lp_new - lp_new) if self.bug == "logp_new − logp_new" else lp_new - lp
        if self.mode == "mala" and self.bug != "no proposal correction":
            back_g = g if self.bug == "reverse density at the current gradient" else g_new
            fwd, back = self.log_q(prop, x, g, h), self.log_q(x, prop, back_g, h)
            log_r = log_r + (fwd - back if self.bug == "swapped proposal densities" else back - fwd)
        u = rng.uniform() if self.bug == "one uniform for all chains" else rng.uniform(size=len(x))
        accept = {"always accept": np.ones(len(x), bool), "u > α": u > np.exp(np.minimum(log_r, 0.0)),
                  "threshold sign": log_r > -np.log(u)}.get(self.bug, np.log(u) < log_r)
        accept = np.broadcast_to(accept, (len(x),))
        return {"x": np.where(accept[:, None], prop, start),
                "lp": lp_new if self.bug == "stale log-density after rejection" else np.where(accept, lp_new, lp),
                "g": g_new if self.bug == "stale score after rejection" else np.where(accept[:, None], g_new, g)}


def user_ula(bug=None):
    cache = {}

    def step(x, h, rng, target):
        if bug == "reused noise":
            if x.shape not in cache:
                cache[x.shape] = rng.standard_normal(x.shape)
            z = cache[x.shape]
        else:
            z = rng.standard_normal(x.shape)
        drift = -h * target.score(x) if bug == "drift sign" else h * target.score(x)
        return x + drift + {"noise ∝ h": 2 * h, "noise variance h": math.sqrt(h)}.get(bug, math.sqrt(2 * h)) * z
    return step


def user_step(mode, bug=None):
    return user_ula(bug) if mode == "ula" else UserMH(mode, bug)


def ar_propose(x, h, rng, target):
    return 0.7 * x + h * rng.standard_normal(x.shape)


def ar_log_q(to, given, h, target):
    return -np.sum((to - 0.7 * given) ** 2, 1) / (2 * h * h)


def user_mh(bug=None):
    """A user's MH with an autoregressive (asymmetric) proposal y = 0.7 x + h z."""
    def step(x, h, rng, target):
        y = ar_propose(x, h, rng, target)
        hastings = {"asymmetric proposal without its Hastings term": 0.0,
                    "swapped proposal densities": ar_log_q(y, x, h, target) - ar_log_q(x, y, h, target)}
        log_r = target.log_prob(y) - target.log_prob(x) + hastings.get(bug, ar_log_q(x, y, h, target)
                                                                         - ar_log_q(y, x, h, target))
        return np.where((np.log(rng.uniform(size=len(x))) < log_r)[:, None], y, x)
    step.propose, step.log_q = ar_propose, ar_log_q
    return step


MODE_FAULTS = [(m, f) for m in ("mala", "rwmh", "ula") for f in faults_of_mode(m)] + \
    [("mh", "asymmetric proposal without its Hastings term"), ("mh", "swapped proposal densities")]


def test_every_listed_fault_has_a_user_step_here():
    assert {f for _, f in MODE_FAULTS} == set(SAMPLER_FAULTS)


@pytest.mark.parametrize("mode", ["mala", "rwmh", "ula", "mh"])
def test_a_correct_user_step_replays_exactly(mode):
    step = user_mh() if mode == "mh" else user_step(mode)
    report = check_sampler_step(step, mode)
    assert report.passed and not report.named, str(report)


@pytest.mark.parametrize("mode,fault", MODE_FAULTS)
def test_each_fault_written_by_a_user_is_named_by_the_exact_replay(mode, fault):
    step = user_mh(fault) if mode == "mh" else user_step(mode, fault)
    report = check_sampler_step(step, mode)
    assert not report.passed and fault in report.named, str(report)
    coincide = {"always accept", "logp_new − logp_new"} if mode == "rwmh" else set()
    # with a symmetric proposal, log π(y) − log π(y) = 0 is always-accept: the one pair that coincides
    assert set(report.named) == ({fault} | coincide if fault in coincide else {fault}), str(report)


@pytest.mark.parametrize("mode", ["mala", "rwmh", "ula"])
def test_no_two_faults_coincide_on_the_step_cases(mode):
    """Every fault differs from the reference on every case, and any two faults differ on some case
    (except always-accept and logp_new − logp_new, one and the same kernel for a symmetric proposal)."""
    outs = {f: [step_reference(c, f) for c in step_cases(mode)] for f in [None] + faults_of_mode(mode)}
    for f in faults_of_mode(mode):
        assert all(not np.allclose(a, r) for a, r in zip(outs[f], outs[None])), f
    for a, b in itertools.combinations(faults_of_mode(mode), 2):
        if {a, b} != {"always accept", "logp_new − logp_new"} or mode != "rwmh":
            assert any(not np.allclose(x, y) for x, y in zip(outs[a], outs[b])), (a, b)


def test_step_cases_avoid_the_coincidences():
    for mode in ("mala", "rwmh", "ula", "mh"):
        for c in step_cases(mode):
            assert c["d"] >= 3 and c["h"] != 0.5 and c["z"].shape == (6, 12, c["d"])


# ---- the statistical tests ------------------------------------------------------------------------
def _refscore(mode):
    if mode == "ula":
        return lambda x, h, rng, target: samplers.langevin_step(x, target.score, h, rng)
    if mode == "mala":
        def step(state, h, rng, target):
            return samplers.mala_step(state, target.log_prob, target.score, h, rng).state
        step.init = lambda x, target: samplers.mala_init(target.log_prob, x, target.score)
        return step

    def rw(state, h, rng, target):
        return samplers.rwmh_step(state, target.log_prob, h, rng).state
    rw.init = lambda x, target: samplers.State(x, target.log_prob(x), None)
    return rw


@pytest.mark.parametrize("mode", ["mala", "rwmh", "ula"])
def test_refscores_samplers_pass_on_every_target(mode):
    report = check_sampler_exactness(_refscore(mode), mode, seed=5)
    assert report.passed and report.replay.passed, str(report)
    assert {r[0] for r in report.rows} == ({"gauss", "aniso"} if mode == "ula" else set(TARGET_NAMES))


def test_a_correct_rwmh_passes_where_the_old_check_compared_it_with_mala():
    report = check_sampler_exactness(user_step("rwmh"), "rwmh", seed=1)
    assert report.passed, str(report)


@pytest.mark.parametrize("mode,fault,test", [
    ("mala", "swapped proposal densities", "detailed balance"),
    ("mala", "one uniform for all chains", "independent chains"),
    ("ula", "noise ∝ h", "moments"),
    ("mh", "asymmetric proposal without its Hastings term", "ranks vs exact draws")])
def test_the_statistical_tests_catch_and_the_replay_names(mode, fault, test):
    step = user_mh(fault) if mode == "mh" else user_step(mode, fault)
    report = check_sampler_exactness(step, mode, seed=3)
    assert not report.passed and fault in report.named, str(report)
    assert any(t.endswith(test) for t in report.failing_tests()), str(report)


def test_one_uniform_is_exact_per_chain_but_the_independence_test_fails_on_every_target():
    """The batch-means moments see an exact law (each chain is exact); the groups' dispersion does not."""
    report = check_sampler_exactness(user_step("mala", "one uniform for all chains"), "mala", seed=4, replay=False)
    assert {f"{t}: independent chains" for t in TARGET_NAMES} <= set(report.failing_tests()), str(report)
    assert all(r[-1] for r in report.rows if r[1] == "moments"), str(report)


def test_a_diverging_step_fails_without_an_error():
    report = check_sampler_exactness(user_step("ula", "drift sign"), "ula", h=0.45, replay=False)
    assert not report.passed and any("finite" in r[1] or not r[-1] for r in report.rows)


def test_a_three_argument_step_is_checked_on_the_standard_gaussian():
    def old(x, h, rng):
        return x - h * x + math.sqrt(2 * h) * rng.standard_normal(x.shape)
    report = check_sampler_exactness(old, "ula")
    assert report.passed and {r[0] for r in report.rows} == {"gauss"}, str(report)
    assert "three-argument" in str(report)


def test_arguments_are_validated():
    with pytest.raises(ValueError, match="mode must be one of"):
        check_sampler_exactness(user_step("mala"), "hmc")
    with pytest.raises(ValueError, match="n_chains must be an integer >= 80"):
        check_sampler_exactness(user_step("mala"), "mala", n_chains=50)
    with pytest.raises(ValueError, match="ULA's stationary law on target 'banana'"):
        check_sampler_exactness(user_step("ula"), "ula", targets=("banana",))
    with pytest.raises(ValueError, match="step.propose"):
        check_sampler_step(user_step("rwmh"), "mh")


# ---- the command line ----------------------------------------------------------------------------
ADAPTER = '''
import sys
sys.path.insert(0, {tests!r})
from test_conformance_sampler import user_step, user_mh
rwmh = user_step("rwmh")
swapped = user_step("mala", "swapped proposal densities")
mh_ok = user_mh()
'''


@pytest.fixture
def adapter(tmp_path):
    import pathlib
    path = tmp_path / "my_samplers.py"
    path.write_text(ADAPTER.format(tests=str(pathlib.Path(__file__).parent)))
    return str(path)


def test_cli_passes_a_correct_rwmh_and_names_a_fault(adapter, capsys):
    assert cli_main(["conformance", "sampler", "rwmh", f"{adapter}:rwmh", "--targets", "gauss,banana"]) == 0
    assert "all pass" in capsys.readouterr().out
    assert cli_main(["conformance", "sampler", "mala", f"{adapter}:swapped", "--targets", "gauss"]) == 1
    assert "named fault: swapped proposal densities" in capsys.readouterr().out
    assert cli_main(["conformance", "sampler", "mala-step", f"{adapter}:swapped"]) == 1
    assert "every failing case matches known fault: swapped proposal densities" in capsys.readouterr().out
    assert cli_main(["conformance", "sampler", "mh-step", f"{adapter}:mh_ok"]) == 0


def test_the_docs_example_runs():
    import pathlib
    import re

    text = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "conformance.md").read_text()
    section = text[text.index("## Sampler exactness"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, "conformance.md[sampler exactness]", "exec"), {})


from hypothesis import given, strategies as st  # noqa: E402


@given(st.lists(st.integers(1, 5), min_size=1, max_size=8), st.floats(-3, 3), st.floats(0.1, 4))
def test_scripted_rng_serves_the_same_numbers_however_a_step_asks_for_them(sizes, loc, scale):
    """Draws in any sizes read z_t in order; normal(loc, scale) is loc + scale·z (the replay's premise)."""
    from refscore.conformance.sampler_replay import ScriptedRng

    z, u = np.arange(2 * 40, dtype=float).reshape(2, 40) / 7.0, np.linspace(0.01, 0.99, 2 * 40).reshape(2, 40)
    rng = ScriptedRng(z, u)
    rng.next_step()
    rng.next_step()  # the second step's block
    got = np.concatenate([np.ravel(rng.normal(loc, scale, size=k)) for k in sizes])
    assert np.allclose(got, loc + scale * z[1, :sum(sizes)], rtol=1e-12, atol=1e-12)
    assert rng.uniform() == u[1, 0] and np.array_equal(rng.random(3), u[1, 1:4])
    assert isinstance(rng, np.random.Generator) and not rng.unscripted
