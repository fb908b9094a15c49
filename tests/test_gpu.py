"""CuPy parity (issues 6, 25). Runs only where CuPy and a CUDA device exist; skips cleanly elsewhere
(CI has no GPU). On a GPU machine: `tools/gpu-check.sh`, or `python -m pytest tests/test_gpu.py -m gpu -v`.

`REFSCORE_GPU_TEST_BACKEND=strict` runs the same tests with the strict CPU stand-in as the device
(what `tools/gpu-check.sh --dry-run` does in CI): the host syncs are then counted by the stand-in's
own counter, where on a GPU CuPy's `cupyx.allow_synchronize(False)` raises on any sync.
"""
import math
import os

import numpy as np
import pytest

from refscore import backends, losses, samplers, sde as sdelib, tweedie
from refscore.energies import Banana, Gaussian, GaussianMixture, MLPEnergy

DEVICE = os.environ.get("REFSCORE_GPU_TEST_BACKEND", "cupy")
try:
    CP = backends.get(DEVICE)
    REASON = ""
except (ImportError, RuntimeError) as e:  # no CuPy or no GPU
    CP, REASON = None, f"cupy backend unavailable: {e}"

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(CP is None, reason=REASON or "no GPU")]
NP = backends.get("numpy")
RTOL64 = 1e-10
RTOL32 = 1e-4  # float32: ~1e-7 unit roundoff amplified through a few hundred flops (issue 25)


def _gmm(bk):
    rng = np.random.default_rng(0)
    covs = np.stack([np.eye(3) * 0.5, [[1.0, 0.3, 0], [0.3, 1.0, 0], [0, 0, 0.4]]])
    return GaussianMixture([0.4, 0.6], rng.normal(size=(2, 3)), covs, backend=bk.name)


def _model(bk):
    m = MLPEnergy(3, (32, 32), rng=np.random.default_rng(1))
    return MLPEnergy(3, params=[{k: bk.asarray(v) for k, v in l.items()} for l in m.params])


def test_energies_scores_and_tweedie_match_numpy():
    x = np.random.default_rng(2).normal(size=(64, 3))
    for bk_pair in [(_gmm(CP), _gmm(NP))]:
        g, gn = bk_pair
        xd = CP.asarray(x)
        np.testing.assert_allclose(CP.to_numpy(g.energy(xd)), gn.energy(x), rtol=RTOL64)
        np.testing.assert_allclose(CP.to_numpy(g.score(xd)), gn.score(x), rtol=RTOL64, atol=1e-12)
        np.testing.assert_allclose(CP.to_numpy(g.posterior_mean(xd, 0.5)), gn.posterior_mean(x, 0.5), rtol=RTOL64)
        np.testing.assert_allclose(CP.to_numpy(tweedie.denoise_vp(g.diffused(0.3).score, xd, 0.3)),
                                   tweedie.denoise_vp(gn.diffused(0.3).score, x, 0.3), rtol=RTOL64)
    m, mn = _model(CP), _model(NP)
    np.testing.assert_allclose(CP.to_numpy(m.score(CP.asarray(x))), mn.score(x), rtol=RTOL64)


@pytest.mark.parametrize("dtype,rtol", [("float64", RTOL64), ("float32", RTOL32)])
def test_every_loss_and_its_gradient_match_numpy(dtype, rtol):
    from autograd import grad

    rng = np.random.default_rng(3)
    x = rng.normal(size=(128, 3)).astype(dtype)
    v, z, zL = rng.normal(size=(2, 128, 3)), rng.normal(size=(128, 3)), rng.normal(size=(3, 128, 3))
    sig = losses.geometric_sigmas(1.0, 0.1, 3)
    out = {}
    for bk in (CP, NP):
        m = _model(bk)
        p = [{k: bk.asarray(a, dtype) for k, a in l.items()} for l in m.params]
        X, V, Z, ZL = (bk.asarray(a, dtype) for a in (x, v, z, zL))
        cases = {
            "esm": lambda p: losses.esm(m.score_fn(p), X, lambda y: -y),
            "ism": lambda p: losses.ism(m.score_fn(p), X),
            "ssm": lambda p: losses.ssm(m.score_fn(p), X, v=V),
            "ssm_vr": lambda p: losses.ssm(m.score_fn(p), X, v=V, variance_reduced=True),
            "dsm": lambda p: losses.dsm(m.score_fn(p), X, 0.3, z=Z),
            "ncsn": lambda p: losses.ncsn(lambda y, s: m.score_fn(p)(y) / s, X, sig, z=ZL),
            "vp": lambda p: losses.vp_denoising(lambda y, b: m.score_fn(p)(y), X, 0.2, eps=Z),
        }
        out[bk.name] = {k: (float(f(p)), bk.to_numpy(grad(f)(p)[0]["W"])) for k, f in cases.items()}
    for k in out["numpy"]:
        np.testing.assert_allclose(out[CP.name][k][0], out["numpy"][k][0], rtol=rtol, err_msg=k)
        np.testing.assert_allclose(out[CP.name][k][1], out["numpy"][k][1], rtol=rtol * 10, atol=rtol, err_msg=k)


def test_one_step_of_each_sampler_with_the_same_noise():
    from refscore.samplers import langevin_log_q, langevin_move

    g, gn = _gmm(CP), _gmm(NP)
    rng = np.random.default_rng(4)
    x, z, u = rng.normal(size=(256, 3)), rng.normal(size=(256, 3)), rng.random(256)
    for h in (0.01, 0.3):
        y = langevin_move(CP.asarray(x), g.score(CP.asarray(x)), h, CP.asarray(z))
        yn = langevin_move(x, gn.score(x), h, z)
        np.testing.assert_allclose(CP.to_numpy(y), yn, rtol=RTOL64)
        lq = (langevin_log_q(to=CP.asarray(x), given=y, score_given=g.score(y), h=h)
              - langevin_log_q(to=y, given=CP.asarray(x), score_given=g.score(CP.asarray(x)), h=h))
        lqn = (langevin_log_q(to=x, given=yn, score_given=gn.score(yn), h=h)
               - langevin_log_q(to=yn, given=x, score_given=gn.score(x), h=h))
        np.testing.assert_allclose(CP.to_numpy(lq), lqn, rtol=1e-9, atol=1e-10)
    sde = sdelib.VPSDE()
    for t in (0.1, 0.9):
        np.testing.assert_allclose(CP.to_numpy(sde.reverse_drift(lambda a, s: g.score(a), CP.asarray(x), t)),
                                   sde.reverse_drift(lambda a, s: gn.score(a), x, t), rtol=RTOL64)


def test_sampler_statistics_on_gpu_match_within_monte_carlo_error():
    std = Gaussian([0.0], [[1.0]], backend=CP.name)
    rng = CP.rng(0)
    x0 = std.sample(100000, rng)
    x, info = samplers.mala(std.unnormalized_log_prob, x0, 0.5, 50, rng, score_fn=std.score)
    var = float(CP.to_numpy(x).var())
    assert abs(var - 1.0) < 5 * math.sqrt(2 / 1e5)
    xu, _ = samplers.langevin(std.score, x0, 0.5, 50, rng)
    assert abs(float(CP.to_numpy(xu).var()) - 4 / 3) < 5 * (4 / 3) * math.sqrt(2 / 1e5)


def _no_syncs():
    """CuPy's own guard (raises on any device-to-host synchronisation); the stand-in's counter."""
    if CP.name == "cupy":
        import cupyx

        return cupyx.allow_synchronize(False)
    from refscore.backends.strict_backend import count_syncs

    class Guard:
        def __enter__(self):
            self.counter = count_syncs()
            self.counts = self.counter.__enter__()

        def __exit__(self, *exc):
            self.counter.__exit__(*exc)
            assert exc[0] is not None or self.counts.syncs == 0, self.counts

    return Guard()


def test_no_host_device_synchronisation_inside_sampler_steps():
    g = _gmm(CP)
    rng = CP.rng(0)
    x = g.sample(1024, rng)
    state = samplers.mala_init(g.unnormalized_log_prob, x, g.score)
    with _no_syncs():
        for _ in range(10):
            state, acc, fin = samplers.mala_step(state, g.unnormalized_log_prob, g.score, 0.1, rng)
            x = samplers.langevin_step(x, g.score, 0.01, rng)
            g.score_unchecked(x)


@pytest.mark.parametrize("loss", ["dsm", "ssm_vr"])
@pytest.mark.parametrize("dtype,rtol", [("float64", RTOL64), ("float32", RTOL32)])
def test_parameter_derivatives_to_third_order_match_numpy(loss, dtype, rtol):
    r""":math:`\frac{d^k}{dt^k} L(\theta + t\,\delta)` at t = 0 for k = 1, 2, 3 (nested autograd): SSM-VR
    already holds second x-derivatives, so its third parameter derivative runs autograd five deep.
    Relative to the largest of the three (a derivative that is ~0 by symmetry has no digits)."""
    from autograd import grad

    rng = np.random.default_rng(5)
    x, z = rng.normal(size=(64, 3)), rng.normal(size=(64, 3))
    delta = [{k: rng.normal(size=a.shape) for k, a in l.items()} for l in _model(NP).params]
    out = {}
    for bk in (CP, NP):
        m = _model(bk)
        p = [{k: bk.asarray(a, dtype) for k, a in l.items()} for l in m.params]
        d = [{k: bk.asarray(a, dtype) for k, a in l.items()} for l in delta]
        X, Z = bk.asarray(x, dtype), bk.asarray(z, dtype)

        def along(t):
            pt = [{k: l[k] + t * dl[k] for k in l} for l, dl in zip(p, d)]
            if loss == "dsm":
                return losses.dsm(m.score_fn(pt), X, 0.3, z=Z)
            return losses.ssm(m.score_fn(pt), X, v=Z[None], variance_reduced=True)

        f1 = grad(along)
        f2 = grad(f1)
        out[bk.name] = np.array([float(f(0.0)) for f in (f1, f2, grad(f2))])
    want = out["numpy"]
    np.testing.assert_allclose(out[CP.name], want, rtol=rtol, atol=rtol * np.abs(want).max())


@pytest.mark.parametrize("name", ["softplus", "tanh", "silu", "sigmoid"])
def test_fused_activation_kernels_compile_and_match_numpy(name):
    """The ElementwiseKernels of refscore.models.activations, every order SSM/ISM need, against NumPy."""
    from autograd import elementwise_grad as egrad

    from refscore.models import activations

    z = np.linspace(-40.0, 40.0, 401)
    f_cp, f_np = getattr(activations, name), getattr(activations, name)
    for k in range(4):
        for dtype, rtol in (("float64", 1e-12), ("float32", 1e-5)):
            got = CP.to_numpy(f_cp(CP.asarray(z, dtype=dtype)))
            np.testing.assert_allclose(got, f_np(z.astype(dtype)), rtol=rtol, atol=rtol * 1e-2, err_msg=f"{name} {k}")
        f_cp, f_np = egrad(f_cp), egrad(f_np)
