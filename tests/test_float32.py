"""float32 in ⇒ float32 out, end to end (API.md conventions; issue 12): energies compute in the
dtype of x, losses and every intermediate of their parameter gradients stay in the parameters'
dtype, samplers and SDE solvers return the input's dtype. On the strict stand-in the float32
runs also assert that no float64 array is created at all (the stand-in counts them), which a
final cast could not hide."""
import numpy as np
import pytest
from autograd import grad
from hypothesis import given, strategies as st

from refscore import backends, losses, samplers, sde as sdelib, tweedie
from refscore.backends.strict_backend import count_syncs
from refscore.energies import (Banana, DoubleWell, Gaussian, GaussianBernoulliRBM, GaussianMixture,
                               MLPEnergy, NealsFunnel, Ring)
from tests.conftest import _backend_params

DTYPES = st.sampled_from(["float32", "float64"])
SEEDS = st.integers(0, 2**31 - 1)


def _energies(bk):
    a = bk.asarray
    return [Gaussian([0.0, 1.0], [[1.0, 0.2], [0.2, 0.5]], backend=bk.name),
            GaussianMixture([0.5, 0.5], [[0.0, 0.0], [1.0, 1.0]], [[[1.0, 0.3], [0.3, 1.0]], np.eye(2)],
                            backend=bk.name),
            GaussianMixture([0.2, 0.8], [[0.0, 0.0], [1.0, 1.0]], [1.0, 2.0], backend=bk.name),
            DoubleWell(), Banana(), NealsFunnel(), Ring(),
            GaussianBernoulliRBM(a([[0.5, -0.1], [0.1, 0.3]]), a([0.0, 0.1]), a([0.2, -0.3]))]


def _no_float64_in(bk, dtype, f):
    """Run f; on the strict stand-in in float32, fail if any float64 array was created."""
    with count_syncs() as c:
        out = f()
    if bk.name == "strict" and dtype == "float32":
        assert c.float64_arrays == 0, "a float64 array was created in float32 work"
    return out


@pytest.mark.parametrize("name", _backend_params())
@given(dtype=DTYPES, seed=SEEDS)
def test_energies_and_scores_keep_the_dtype_of_x(name, dtype, seed):
    bk = backends.get(name)
    x = bk.normal(bk.rng(seed), (5, 2), dtype)
    for E in _energies(bk):
        e, s = _no_float64_in(bk, dtype, lambda: (E.energy(x), E.score(x)))
        assert (e.dtype, s.dtype) == (x.dtype, x.dtype), type(E).__name__


@pytest.mark.parametrize("name", _backend_params())
@given(dtype=DTYPES, seed=SEEDS)
def test_losses_and_their_parameter_gradients_keep_the_dtype(name, dtype, seed):
    bk = backends.get(name)
    rng = bk.rng(seed)
    x = bk.normal(rng, (6, 2), dtype)
    m = MLPEnergy(2, (4, 4), rng=rng, dtype=dtype)
    sig = losses.geometric_sigmas(1.0, 0.1, 2)
    cases = {
        "esm": lambda p: losses.esm(m.score_fn(p), x, lambda y: -y),
        "ism": lambda p: losses.ism(m.score_fn(p), x),
        "ssm": lambda p: losses.ssm(m.score_fn(p), x, bk.rng(1)),
        "ssm_vr": lambda p: losses.ssm(m.score_fn(p), x, bk.rng(1), variance_reduced=True),
        "dsm": lambda p: losses.dsm(m.score_fn(p), x, 0.3, bk.rng(1)),
        "ncsn": lambda p: losses.ncsn(lambda y, s: m.score_fn(p)(y) / s, x, sig, bk.rng(1)),
        "vp": lambda p: losses.vp_denoising(lambda y, b: m.score_fn(p)(y), x, 0.2, bk.rng(1)),
    }
    for key, f in cases.items():
        value, g = _no_float64_in(bk, dtype, lambda: (f(m.params), grad(f)(m.params)))
        assert value.dtype == x.dtype, key
        assert {str(layer[k].dtype) for layer in g for k in layer} == {dtype}, key


@pytest.mark.parametrize("name", _backend_params())
@given(dtype=DTYPES, seed=SEEDS)
def test_samplers_and_solvers_keep_the_dtype(name, dtype, seed):
    bk = backends.get(name)
    rng = bk.rng(seed)
    g = Gaussian([0.0, 0.0], np.eye(2), backend=bk.name)
    x = bk.normal(rng, (4, 2), dtype)
    runs = {
        "langevin": lambda: samplers.langevin(g.score, x, 0.1, 3, rng)[0],
        "mala": lambda: samplers.mala(g.unnormalized_log_prob, x, 0.1, 3, rng)[0],
        "rwmh": lambda: samplers.rwmh(g.unnormalized_log_prob, x, 0.3, 3, rng)[0],
        "annealed": lambda: samplers.annealed_langevin(lambda y, s: -y / (1 + s * s), x, [1.0, 0.5], 0.1, 2, rng)[0],
        "reverse VP": lambda: sdelib.reverse_sde_sample(sdelib.VPSDE(), lambda y, t: -y, x, rng, n_steps=3),
        "reverse VE + corrector": lambda: sdelib.reverse_sde_sample(sdelib.VESDE(), lambda y, t: -y, x, rng,
                                                                    n_steps=2, corrector_steps=1),
        "tweedie": lambda: tweedie.denoise(g.score, x, 0.5),
    }
    for key, f in runs.items():
        assert _no_float64_in(bk, dtype, f).dtype == x.dtype, key
    # the ODE integrator (SciPy) works on the host in float64; its output follows the input
    assert sdelib.probability_flow_sample(sdelib.VPSDE(), lambda y, t: -y, x).dtype == x.dtype


@pytest.mark.parametrize("cls", ["Gaussian", "GaussianMixture"])
def test_dtype_argument_sets_the_parameters_and_samples(cls):
    bk = backends.get("strict")
    E = (Gaussian([0.0, 1.0], np.eye(2), backend="strict", dtype="float32") if cls == "Gaussian" else
         GaussianMixture([0.5, 0.5], [[0.0, 0.0], [1.0, 1.0]], [1.0, 2.0], backend="strict", dtype="float32"))
    assert E.sample(3, bk.rng(0)).dtype == np.float32
    # float64 input still computes in float64 (the parameters are kept in float64 and cast)
    x64 = bk.normal(bk.rng(1), (3, 2))
    assert E.score(x64).dtype == np.float64
    with pytest.raises(ValueError, match="dtype must be a floating dtype.*int32"):
        Gaussian([0.0], [[1.0]], dtype="int32")
