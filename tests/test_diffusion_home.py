"""Issue 31: refscore.diffusion is the one home of the diffusion formulas, on every backend, per example on
images, below sde/samplers/models; the SDEs' discretisation and the reverse-diffusion sampler built on it."""
import ast
import io
import math
import pathlib
import re
import tokenize

import numpy as np
import pytest
from autograd import grad
from autograd.test_util import check_grads
from hypothesis import given
from hypothesis import strategies as st

from refscore import backends
from refscore import diffusion as D
from refscore.samplers import reverse_diffusion, reverse_diffusion_move
from refscore.sde import VESDE, VPSDE, SubVPSDE

ROOT = pathlib.Path(__file__).resolve().parents[1] / "refscore"
SDES = [VESDE(0.05, 8.0), VPSDE(0.1, 12.0), SubVPSDE(0.2, 9.0)]
BETAS = np.linspace(1e-3, 0.2, 7)


def _to_np(a):
    return backends.of(a).to_numpy(a) if hasattr(a, "shape") else a


def _per_example_results(x, z, s, t, t_prev, k, sig, alpha):
    """Every sde/diffusion function of per-example coefficients on the points ``x`` (n, *shape)."""
    out = {"per_example": D.per_example(sig, x) * x,
           "q_sample": D.q_sample(x, k, z, BETAS), "ancestral_step": D.ancestral_step(x, k, s, z, BETAS),
           "score_from_eps": D.score_from_eps(z, sig), "x0_from_score": D.x0_from_score(x, s, alpha, sig),
           "v_from_eps": D.v_from_eps(x, z, alpha, sig), "score_from_denoiser": D.score_from_denoiser(x, s, sig),
           "denoiser_derivative": D.denoiser_derivative(x, s, sig),
           "tweedie_denoise_ve": D.tweedie_denoise_ve(x, s, sig),
           "reverse_diffusion_step": D.reverse_diffusion_step(x, s, 0.1 * x, sig * sig, z),
           "vp_discretize": D.vp_discretize(x, alpha * 0.5)[0],
           "edm_denoiser": D.edm_denoiser(lambda u, log_s: u * log_s,
                                          x, D.per_example(sig, x), 0.5, 0.1),
           "annealed_langevin_step": D.annealed_langevin_step(x, s, z, [3.0, 1.0, 0.2], k % 3, 0.01),
           "langevin_corrector_step": D.langevin_corrector_step(x, s, z, 0.16),
           "ancestral_step_large": D.ancestral_step(x, k, s, z, BETAS, "large"),
           "langevin_move": D.langevin_move(x, s, D.per_example(alpha, x), z),
           "langevin_move_noise_var": D.langevin_move(x, s, 0.1, z, noise_var=sig),
           "ve_discretize": D.per_example(D.ve_discretize(x, sig, 0.5 * sig)[1], x) * x,
           "vp_discretize_G": D.per_example(D.vp_discretize(x, alpha * 0.5)[1], x) * x,
           "score_loss_weight": D.per_example(D.score_loss_weight(sig, 0.5), x) * x,
           "edm_coefficients": D.edm_coefficients(D.per_example(sig, x), 0.5)[1] * x}
    for sde in SDES:
        name = type(sde).__name__
        out[name + ".marginal_prob"] = sde.marginal_prob(x, t)[0]
        out[name + ".drift"] = sde.drift(x, t)
        out[name + ".reverse_drift"] = sde.reverse_drift(lambda y, u: s, x, t)
        out[name + ".ode_drift"] = sde.ode_drift(lambda y, u: s, x, t)
        out[name + ".discretize"] = sde.discretize(x, t, t_prev)[0]
        out[name + ".reverse_sde_step"] = D.reverse_sde_step(sde, x, t, 0.01, s, z)
        out[name + ".ode_velocity"] = D.ode_velocity(sde, x, t, s)
        out[name + ".discretize_G"] = D.per_example(sde.discretize(x, t, t_prev)[1], x) * x
        out[name + ".likelihood_weighting"] = D.per_example(D.likelihood_weighting(sde, t), x) * x
        out[name + ".reverse_sde_step_dt"] = D.reverse_sde_step(sde, x, t, 0.01 * t, s, z)
    return out


@given(n=st.integers(1, 4), c=st.integers(1, 3), h=st.integers(1, 4), w=st.integers(1, 4),
       seed=st.integers(0, 2**32 - 1))
def test_every_function_is_per_example_on_images(n, c, h, w, seed):
    # a coefficient per example must scale that example's whole image (n, C, H, W), never broadcast along
    # its rows: the image results, flattened, are the results on the flat rows (n, CHW) -- exactly
    rng = np.random.default_rng(seed)
    x, z, s = (rng.normal(size=(n, c, h, w)) for _ in range(3))
    t = rng.uniform(0.05, 1.0, size=n)
    args = (t, t * rng.uniform(0.1, 0.9, size=n), rng.integers(0, len(BETAS), size=n),
            rng.uniform(0.1, 3.0, size=n), rng.uniform(0.2, 1.0, size=n))
    img = _per_example_results(x, z, s, *args)
    flat = _per_example_results(*(a.reshape(n, -1) for a in (x, z, s)), *args)
    for name in img:
        assert img[name].shape == x.shape, name
        np.testing.assert_allclose(img[name].reshape(n, -1), flat[name], rtol=1e-13, atol=1e-15, err_msg=name)


def test_vp_marginal_is_per_example_on_images_where_rows_and_examples_coincide():
    # the bug of the (n, 1) column: with n = H it broadcast a_i along the image's rows instead of examples
    x = np.random.default_rng(0).normal(size=(3, 2, 3, 5))
    t = np.array([0.1, 0.5, 0.9])
    sde = VPSDE()
    a, _ = sde.marginal_coeffs(t)
    mean = sde.marginal_prob(x, t)[0]
    for i in range(3):
        np.testing.assert_allclose(mean[i], a[i] * x[i], rtol=1e-15)


def test_on_every_backend_float32_stays_float32(bk):
    rng = np.random.default_rng(1)
    xh = rng.normal(size=(4, 6)).astype(np.float32)
    x, s, z = (bk.asarray(a, dtype="float32") for a in (xh, 0.5 * xh, xh[::-1].copy()))
    sig = bk.asarray([0.1, 0.5, 1.0, 2.0], dtype="float32")
    t = bk.asarray([0.1, 0.3, 0.6, 0.9], dtype="float32")
    results = {"edm": D.edm_denoiser(lambda u, ls: u * ls, x, D.per_example(sig, x), 0.5),
               "coefs": D.edm_coefficients(D.per_example(sig, x), 0.5)[1] * x,
               "precond": D.per_example(D.preconditioning(sig, 0.5)[0] * D.loss_weight(sig, 0.5), x) * x,
               "step": D.reverse_diffusion_step(x, s, 0.0, sig, z), "score": D.score_from_eps(z, sig),
               "q": D.q_sample(x, bk.asarray([0, 2, 4, 6]), z, BETAS),
               "ancestral": D.ancestral_step(x, bk.asarray([0, 2, 4, 6]), s, z, BETAS)}
    for sde in SDES:
        results[type(sde).__name__] = sde.marginal_prob(x, t)[0] + sde.discretize(x, t, 0.5 * t)[0]
    for name, r in results.items():
        assert backends.of(r).name == bk.name and r.dtype == np.float32, name
    # the same numbers as NumPy in float64, to float32 round-off
    want = D.edm_denoiser(lambda u, ls: u * ls, xh.astype(float), D.per_example(_to_np(sig).astype(float), xh), 0.5)
    np.testing.assert_allclose(_to_np(results["edm"]), want, rtol=1e-5)


def test_edm_denoiser_is_differentiable_in_x_and_sigma():
    rng = np.random.default_rng(2)
    x, sig = rng.normal(size=(3, 4)), np.array([0.2, 1.0, 3.0])
    feats = lambda u, ls: np.tanh(u) * ls  # noqa: E731
    check_grads(lambda y, sg: D.edm_denoiser(feats, y, D.per_example(sg, y), 0.5, 0.3), modes=["rev"], order=2)(x, sig)
    # dD/dx at F = 0 is c_skip, the coefficient of Karras et al. 2022, Table 1
    g = grad(lambda y: np.sum(D.edm_denoiser(lambda u, ls: 0.0 * u, y, 2.0, 0.5)))(x)
    np.testing.assert_allclose(g, 0.25 / (4.0 + 0.25), rtol=1e-14)


def test_preconditioning_keeps_its_values():
    # Karras et al. 2022, Table 1 at sigma = sigma_data: c_skip = 1/2, c_out = sigma_d/sqrt 2, c_in = 1/(sigma_d sqrt 2)
    c_skip, c_out, c_in, c_noise = D.preconditioning(np.array([0.5]), 0.5)
    np.testing.assert_allclose([c_skip[0], c_out[0], c_in[0], c_noise[0]],
                               [0.5, 0.5 / math.sqrt(2), 1 / (0.5 * math.sqrt(2)), 0.25 * math.log(0.5)], rtol=1e-15)
    assert D.score_loss_weight(2.0, 0.5) == pytest.approx(2.0**4 * D.loss_weight(np.array([2.0]), 0.5)[0], rel=1e-14)


# ----- the discretisation (Song et al. 2021, Appendix E, eqs. 45-47) ---------------------------------------
def test_ve_discretisation_adds_the_variance_between_levels():
    sde, x = VESDE(0.01, 50.0), np.ones((2, 3))
    f, G = sde.discretize(x, 0.7, 0.4)
    assert np.all(f == 0) and G**2 == pytest.approx(sde.sigma(0.7) ** 2 - sde.sigma(0.4) ** 2, rel=1e-13)


def test_vp_discretisation_has_the_sdes_marginals_at_the_grid_times():
    # the chain x_{i+1} = sqrt(1 - beta_i) x_i + sqrt(beta_i) z: its mean factor and variance from x_0 at t = 0
    # are the SDE's a(t)^2, s(t)^2 at every grid time (beta_i exact, not beta(t) dt)
    sde, ts = VPSDE(0.1, 20.0), np.linspace(0.0, 1.0, 9)
    m, v = 1.0, 0.0
    for t_prev, t in zip(ts[:-1], ts[1:]):
        f, G = sde.discretize(np.ones((1, 1)), t, t_prev)
        m, v = m * (1.0 + f[0, 0]), (1.0 + f[0, 0]) ** 2 * v + G**2
        a, s = sde.marginal_coeffs(float(t))
        assert (m, v) == pytest.approx((a, s * s), rel=1e-12)


def test_sub_vp_discretisation_is_euler_maruyama():
    sde, x = SubVPSDE(), np.full((2, 2), 3.0)
    f, G = sde.discretize(x, 0.6, 0.5)
    np.testing.assert_allclose(f, sde.drift(x, 0.6) * 0.1, rtol=1e-13)
    assert G == pytest.approx(sde.diffusion(0.6) * math.sqrt(0.1), rel=1e-13)


def test_reverse_diffusion_on_the_ve_sde_is_the_ladder_chain():
    # the same chain on VESDE.discretize over times, and on the ladder sigma(t_i): equal to round-off
    sde, ts = VESDE(0.05, 5.0), np.linspace(1.0, 0.1, 12)
    score = lambda x, sigma: -x / (1.0 + sigma**2)  # noqa: E731  N(0, I) perturbed
    x0 = 5.0 * np.random.default_rng(3).normal(size=(50, 2))
    a, _ = reverse_diffusion(score, x0, [sde.sigma(t) for t in ts], np.random.default_rng(4), final_denoise=False)
    b, _ = reverse_diffusion(lambda x, t: score(x, sde.sigma(t)), x0, rng=np.random.default_rng(4), sde=sde,
                             times=ts, final_denoise=False)
    np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)
    x, z = np.ones((1, 2)), np.full((1, 2), 0.5)
    np.testing.assert_allclose(reverse_diffusion_move(x, -x, 2.0, 1.0, z), x + 3.0 * (-x) + math.sqrt(3.0) * z)


def test_reverse_diffusion_on_the_vp_sde_samples_gaussian_data():
    # data N(mu, v I): the exact VP score at t is that of N(a mu, (a^2 v + s^2) I); 600 steps from the prior;
    # mean and variance within 5 Monte Carlo standard errors (the discretisation's bias is far below them)
    sde, mu, v, n = VPSDE(0.1, 20.0), np.array([1.0, -2.0]), 0.25, 4000
    ts = np.linspace(1.0, 1e-3, 601)

    def score(x, t):
        a, s = sde.marginal_coeffs(t)
        return -(x - a * mu) / (a * a * v + s * s)

    rng = np.random.default_rng(5)
    x, info = reverse_diffusion(score, rng.normal(size=(n, 2)), rng=rng, sde=sde, times=ts)
    assert info["n_diverged"] == 0
    se_mean, se_var = math.sqrt(v / n), v * math.sqrt(2.0 / (n - 1))
    assert np.all(np.abs(x.mean(0) - mu) < 5 * se_mean)
    assert np.all(np.abs(x.var(0, ddof=1) - v) < 5 * se_var)  # Tweedie at t_min shrinks it by ~s(t_min)^2 = 1e-4


# ----- one home (grep) and the layering -------------------------------------------------------------------
FORMULAS = {
    # EDM's c_skip / c_out / c_in: sigma^2 + sigma_data^2 in any spelling
    "EDM preconditioning": (r"(sigma|sig|s)(\*\*2|\*(sigma|sig|s))\+(sigma_data\*\*2|sd2|sd\*\*2|sd\*sd|sigma_data\*sigma_data)"
                            r"|(sigma_data\*\*2|sd2|sd\*\*2|sd\*sd)\+(sigma|sig|s)(\*\*2|\*(sigma|sig|s))",
                            {"diffusion/edm.py"}),
    # the VP / sub-VP marginal e^{-B/2}, 1 - e^{-B} and the VE one sigma_min^2 (e^{2t log r} - 1)
    "VP/VE marginal": (r"exp\(-0\.5\*|expm1\(-|expm1\(2\.0\*", {"diffusion/processes.py"}),
    # the reverse steps: + G^2 s + G z, + g sqrt(dt) z, - reverse_drift * dt
    "reverse step": (r"sqrt\(dt\)\*|sqrt\(gap\)\*|(gap|g2|G\*\*2|G\*G)\*score|reverse_drift\([^)]*\)\*dt",
                     {"diffusion/moves.py", "diffusion/steps.py"}),
}
# the verifier's planted faults are deliberately wrong copies: each objective's "as code" function written
# once with one knob turned (refscore/conformance/objectives_*.py, one record per objective)
FAULTS = re.compile(r"conformance/objectives_\w+\.py$")


def _code_lines(path):
    """Each line's code without strings and comments, spaces and ``self.`` removed."""
    lines = {}
    for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if tok.type in (tokenize.NAME, tokenize.OP, tokenize.NUMBER):
            lines.setdefault(tok.start[0], []).append(tok.string)
    return {k: "".join(v).replace("self.", "") for k, v in lines.items()}


def _where(pattern):
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        found += [(rel, n) for n, code in _code_lines(path).items() if re.search(pattern, code) and not FAULTS.search(rel)]
    return found


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_each_formula_is_written_once(name):
    pattern, homes = FORMULAS[name]
    found = _where(pattern)
    assert {rel for rel, _ in found} <= homes, f"{name} written outside {homes}: {found}"
    assert found, f"the {name} pattern no longer finds its home {homes}"


def test_the_grep_finds_a_planted_copy(tmp_path):
    planted = tmp_path / "copy.py"
    planted.write_text("def f(sigma, sd):\n    return sd * sd / (sigma ** 2 + sd * sd)  # c_skip\n")
    assert re.search(FORMULAS["EDM preconditioning"][0], _code_lines(planted)[2])
    planted.write_text('"""sigma**2 + sd**2 in a docstring is prose"""\n')
    assert not any(re.search(FORMULAS["EDM preconditioning"][0], c) for c in _code_lines(planted).values())


def _imports(path):
    """Every refscore module a file imports, at module level or lazily, as absolute dotted names."""
    pkg = ".".join(("refscore",) + path.relative_to(ROOT).parent.parts)
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = pkg.rsplit(".", node.level - 1)[0] if node.level else ""
            mod = ".".join(p for p in (base, node.module or "") if p)
            names |= {mod} | {f"{mod}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
    return names


def test_diffusion_sits_below_sde_samplers_models():
    above = ("refscore.sde", "refscore.samplers", "refscore.models", "refscore.conformance", "refscore.apps",
             "refscore.energies")
    for path in sorted((ROOT / "diffusion").glob("*.py")):
        bad = sorted(m for m in _imports(path) if m.startswith(above))
        assert not bad, f"{path.name} imports {bad}"
    # and the old paths are the same objects, not copies
    from refscore.samplers import annealed, langevin_move
    from refscore.sde import solvers, sdes

    assert langevin_move is D.langevin_move and annealed.annealed_step_sizes is D.moves.annealed_step_sizes
    assert solvers.corrector_step_size is D.corrector_step_size and sdes.per_row is D.per_example
