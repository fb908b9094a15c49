"""The autograd extension for device arrays (backends/_autograd_ext.py), exercised on the strict
CPU stand-in: every replacement rule gives NumPy's result, and a NumPy array leaking into
device math is caught."""
import autograd.numpy as anp
import numpy as np
import pytest
from autograd import elementwise_grad, grad

from refscore import backends

S = backends.get("strict")
H = S.to_numpy

CASES = {
    "sum axis": lambda a: anp.sum(anp.sum(a * a, axis=1)),
    "mean keepdims": lambda a: anp.sum(anp.mean(a, axis=0, keepdims=True) ** 3),
    "where": lambda a: anp.sum(anp.where(a > 0, a, 2.0 * a) ** 2),
    "slice": lambda a: anp.sum(a[:, 1] ** 2) + anp.sum(a[1:, 0] ** 3),
    "int index": lambda a: anp.sum(a[backends.of(a).asarray([0, 2, 2]).astype("int64")] ** 2),
    "matmul": lambda a: anp.sum((a @ a.T) ** 2),
    "logaddexp/tanh/exp": lambda a: anp.sum(anp.logaddexp(0.0, a) * anp.tanh(a) + anp.exp(-a * a)),
    "reshape/transpose": lambda a: anp.sum(anp.reshape(a.T, (-1,)) ** 3),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_rules_match_numpy_to_third_order(name):
    f = CASES[name]
    a = np.random.default_rng(0).normal(size=(3, 2))
    g1 = grad(f)
    g2 = elementwise_grad(lambda y: anp.sum(g1(y) ** 2))
    g3 = elementwise_grad(lambda y: anp.sum(g2(y) * y))
    for g in (g1, g2, g3):
        np.testing.assert_allclose(H(g(S.asarray(a))), g(a), rtol=1e-12, atol=1e-12)


def test_a_numpy_array_leaking_into_device_math_is_caught():
    a = S.asarray(np.ones((2, 2)))
    with pytest.raises(TypeError, match="mixed with a StrictArray"):
        grad(lambda y: anp.sum(y * np.ones((2, 2))))(a)  # a host constant inside device math
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)
    # the same function written against the backend passes
    g = grad(lambda y: anp.sum(y * S.xp.ones((2, 2))))(a)
    assert H(g).tolist() == [[1.0, 1.0], [1.0, 1.0]]
