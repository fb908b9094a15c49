"""The autograd extension for device arrays (backends/autograd_patches.py), exercised on the strict
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


def test_the_numpy_backend_alone_keeps_float32_gradients_float32():
    """Issue 25: the rules were installed only when a device backend (cupy, strict) was made, so a
    NumPy-only process (every user without a GPU, and `refscore bench`) ran autograd's own `mean`
    rule, whose int64 divisor (NEP 50) turned half of a float32 SSM backward pass into float64.
    A fresh interpreter, where no other backend is ever made:"""
    import subprocess
    import sys

    code = ("import numpy as np, autograd.numpy as anp\n"
            "from autograd import grad\n"
            "from refscore import backends, losses\n"
            "from refscore.energies import MLPEnergy\n"
            "bk = backends.get('numpy')\n"
            "print(grad(anp.mean)(np.ones(3, np.float32)).dtype)\n"
            "m = MLPEnergy(2, (8,), rng=bk.rng(0), dtype='float32')\n"
            "x, v = bk.normal(bk.rng(1), (16, 2), 'float32'), bk.normal(bk.rng(2), (1, 16, 2), 'float32')\n"
            "g = grad(lambda p: losses.ssm(m.score_fn(p), x, v=v, variance_reduced=True))(m.params)\n"
            "print(sorted({str(a.dtype) for layer in g for a in layer.values()}))\n"
            "import sys; print('strict' in sys.modules.get('refscore.backends').__dict__.get('_cache', {}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[:3] == ["float32", "['float32']", "False"], out
