"""The fused activations (refscore.models.activations): each derivative order of softplus, tanh and
SiLU equals the plain composition (autograd of logaddexp / tanh / z·sigmoid) to third order,
stays finite where the composition overflows, and passes autograd's own gradient check."""
import autograd.numpy as anp
import numpy as np
import pytest
from autograd import elementwise_grad as egrad
from autograd.test_util import check_grads

from refscore import backends
from refscore.models import activations as A

COMPOSED = {
    "softplus": lambda z: anp.logaddexp(0.0, z),
    "tanh": anp.tanh,
    "silu": lambda z: z * 0.5 * (1.0 + anp.tanh(0.5 * z)),
    "sigmoid": lambda z: 0.5 * (1.0 + anp.tanh(0.5 * z)),
}


def _derivatives(f, k=3):
    out = [f]
    for _ in range(k):
        out.append(egrad(out[-1]))
    return out


@pytest.mark.parametrize("name", sorted(COMPOSED))
def test_derivatives_match_the_composition_to_third_order(name):
    z = np.linspace(-30.0, 30.0, 241)  # moderate and large |z|, where the composition is still finite
    for k, (fused, plain) in enumerate(zip(_derivatives(getattr(A, name)), _derivatives(COMPOSED[name]))):
        np.testing.assert_allclose(fused(z), plain(z), rtol=1e-12, atol=1e-14, err_msg=f"{name} order {k}")


@pytest.mark.parametrize("name", sorted(COMPOSED))
def test_check_grads_to_third_order(name):
    z = np.random.default_rng(0).normal(scale=3.0, size=(4, 3))
    check_grads(getattr(A, name), modes=["rev"], order=3)(z)
    # and through a product with another input, as inside an MLP layer
    check_grads(lambda w: anp.sum(getattr(A, name)(z * w) ** 2), modes=["rev"], order=3)(np.ones((4, 3)))


@pytest.mark.parametrize("name", ["tanh", "softplus", "silu"])
def test_no_nan_at_large_pre_activations(name):
    # |z| = 400: cosh overflows, and autograd's tanh rule g/cosh² gives NaN from order 2 on
    z = np.array([-400.0, -50.0, 50.0, 400.0])
    with np.errstate(all="ignore"):
        if name == "tanh":
            assert np.isnan(_derivatives(anp.tanh)[3](z)).any()
    for k, f in enumerate(_derivatives(getattr(A, name))):
        assert np.all(np.isfinite(f(z))), f"{name} order {k}"
    # the exact limits: f''(±∞) = f'''(±∞) = 0; softplus' = σ → 0/1; softplus(z) = z for z ≫ 0
    np.testing.assert_allclose(_derivatives(A.softplus)[1](z), [0, 0, 1, 1], atol=1e-20)
    np.testing.assert_allclose(A.softplus(z)[2:], z[2:], rtol=1e-15)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", ["numpy", "strict"])
def test_every_order_keeps_dtype_and_backend(dtype, backend):
    bk = backends.get(backend)
    z = bk.asarray(np.linspace(-5, 5, 11), dtype=dtype)
    for name in ("softplus", "tanh", "silu"):
        for k, f in enumerate(_derivatives(getattr(A, name))):
            out = f(z)
            assert isinstance(out, bk.array_type) and out.dtype == z.dtype, (name, k)


def test_cuda_kernel_source_is_generated_from_the_same_polynomials():
    from refscore.models._cupy_kernels import kernel_source

    # tanh''' = -2Q² + 4QT² with Q = 1 - T²
    assert kernel_source("tanh", 3).endswith("out = g * (4.0*v1*v2*v2 + -2.0*v1*v1);")
    assert "log1p(exp(-fabs(z)))" in kernel_source("softplus", 0)
    with pytest.raises(ValueError, match="unknown activation 'relu'"):
        A.derivative("relu", 1)(np.zeros(2))


# ----- the activations are pure: no cache keyed on id() -----
REFERENCE = {
    "sigmoid": (A.sigmoid, lambda z: 1 / (1 + np.exp(-z))),
    "silu": (A.silu, lambda z: z / (1 + np.exp(-z))),
    "softplus'": (A.derivative("softplus", 1), lambda z: 1 / (1 + np.exp(-z))),
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_activation_after_an_in_place_change(name):
    f, ref = REFERENCE[name]
    z = np.array([0.0, 1.0])
    f(z)
    z[:] = [10.0, -10.0]
    _same(f(z), f(z.copy()), ref(z))
    z += 5
    _same(f(z), f(z.copy()), ref(z))
    np.testing.assert_array_equal(egrad(f)(z), egrad(f)(z.copy()))  # the VJP too


def _same(got, fresh, reference):
    """Equal to the value on a fresh copy (a new id), bit for bit, and to the textbook formula: a
    stale cached value is off by order one; the fused form ½(1 + tanh(z/2)) rounds in absolute
    terms (about 1e-16 · max(1, |z|) for |z| <= 50), hence atol and not rtol."""
    np.testing.assert_array_equal(got, fresh)
    np.testing.assert_allclose(got, reference, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_activation_with_a_reused_id(name):
    f, ref = REFERENCE[name]
    reused = 0
    for k in range(50):
        a = np.array([k - 3.0, 1.0, 2.0])
        f(a)
        old = id(a)
        del a
        b = np.array([3.0 - k, 0.5, 1.0])  # usually gets a's id back
        reused += id(b) == old
        _same(f(b), f(b.copy()), ref(b))
    assert reused > 0, "CPython never reused an id here: the test did not exercise the case"
