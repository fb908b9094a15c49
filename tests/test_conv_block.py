"""Issue 36, item 2: the U-Net block (3x3 convolution, bias, FiLM, SiLU) as one primitive computed in
cache-sized pieces (refscore.models.conv_block) against the same operations composed, its VJP by
finite differences, the piece size not changing any value, and the strict CuPy stand-in."""
from unittest import mock

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad, value_and_grad
from autograd.test_util import check_grads
from scipy.special import expit

from refscore import backends
from refscore.models import conv_block
from refscore.models.activations import silu
from refscore.models.conv import conv3x3
from refscore.models.conv_block import conv_film_silu


def composed(h, K, b, gamma, beta, skip=None, upsample=False):
    """The reference: the convolution primitive, then FiLM and the SiLU primitive."""
    out = conv3x3(h, K, b, skip=skip, upsample=upsample)
    return silu((out if gamma is None else out * gamma) + beta)


# (n, H, W, C_h, C_skip, C_out, upsample, examples in gamma/beta, FiLM)
CASES = [(3, 4, 5, 2, 3, 4, True, 3, True), (2, 6, 6, 3, 0, 5, False, 1, True), (1, 3, 3, 1, 0, 2, False, 1, False),
         (5, 4, 4, 4, 0, 3, False, 5, False), (4, 2, 3, 5, 2, 6, True, 1, True), (1, 1, 1, 1, 0, 1, False, 1, True),
         (2, 3, 2, 3, 0, 4, True, 2, True), (2, 4, 3, 2, 3, 5, False, 1, True), (1, 1, 1, 2, 1, 3, True, 1, False)]


def _args(case, rng, dtype="float64"):
    n, H, W, Ch, Cs, Co, up, m, film = case
    side = (2 * H, 2 * W) if up else (H, W)
    arr = lambda *s: rng.normal(size=s).astype(dtype)  # noqa: E731
    skip = arr(n, *side, Cs) if Cs else None
    return (arr(n, H, W, Ch), arr(9 * (Ch + Cs), Co), arr(Co), arr(m, 1, 1, Co) if film else None,
            arr(m, 1, 1, Co), skip), up


@pytest.mark.parametrize("case", CASES)
def test_block_equals_the_composed_operations_values_and_every_gradient(case):
    rng = np.random.default_rng(sum(case[:6]))
    args, up = _args(case, rng)
    ours = conv_film_silu(*args, upsample=up)
    np.testing.assert_allclose(ours, composed(*args, upsample=up), rtol=1e-12, atol=1e-13)
    G = rng.normal(size=ours.shape)
    for i, a in enumerate(args):
        if a is None:
            continue
        f = lambda fn: (lambda v: anp.sum(fn(*args[:i], v, *args[i + 1:], upsample=up) * G))  # noqa: E731
        np.testing.assert_allclose(grad(f(conv_film_silu))(a), grad(f(composed))(a), rtol=1e-11, atol=1e-12,
                                   err_msg=f"argument {i}")


@pytest.mark.parametrize("case", CASES[:4] + CASES[6:])
def test_block_vjp_by_finite_differences(case):
    args, up = _args(case, np.random.default_rng(11))
    live = [i for i, a in enumerate(args) if a is not None]

    def f(*vals):
        full = list(args)
        for i, v in zip(live, vals):
            full[i] = v
        return conv_film_silu(*full, upsample=up)

    check_grads(f, modes=["rev"], order=1)(*[args[i] for i in live])


def test_the_piece_size_changes_no_value():
    """One example per piece (the smallest) and the whole batch in one piece give the same values and
    gradients: the pieces only reorder where the work is done."""
    args, up = _args((6, 5, 4, 3, 2, 4, True, 6, True), np.random.default_rng(5))
    G = np.random.default_rng(6).normal(size=(6, 10, 8, 4))
    run = lambda: value_and_grad(lambda a: anp.sum(conv_film_silu(*a, upsample=up) * G))(args)  # noqa: E731
    with mock.patch.object(conv_block, "CHUNK_BYTES", 1):
        assert len(conv_block._pieces(6, 100, True)) == 6
        small = run()
    with mock.patch.object(conv_block, "CHUNK_BYTES", 1 << 40):
        assert conv_block._pieces(6, 100, True) == [(0, 6)]
        whole = run()
    np.testing.assert_allclose(small[0], whole[0], rtol=1e-12)
    for a, b in zip(small[1], whole[1]):
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)


def test_pieces_cover_every_example_once():
    for n in (1, 2, 7, 64):
        for per in (1, 1000, conv_block.CHUNK_BYTES, 10 * conv_block.CHUNK_BYTES):
            pieces = conv_block._pieces(n, per, True)
            assert [e for a, b in pieces for e in range(a, b)] == list(range(n))
            assert all(b - a == max(1, min(n, conv_block.CHUNK_BYTES // per)) for a, b in pieces[:-1])
        assert conv_block._pieces(n, 1, False) == [(0, n)]


def test_float32_silu_keeps_relative_accuracy_far_in_both_tails():
    """Pre-activations from -80 to 80 in float32: y = z sigma(z) and its derivative
    sigma(z)(1 + z sigma(-z)) within a few float32 ulps of float64 (scipy.special.expit), no 0 from
    a 1 - sigma cancellation and no overflow warning."""
    z = np.concatenate([-np.geomspace(80, 1e-3, 60), np.geomspace(1e-3, 80, 60)]).astype("float32")
    n = z.size
    h = np.zeros((n, 1, 1, 1), "float32")
    K = np.zeros((9, 1), "float32")
    beta = z.reshape(n, 1, 1, 1)  # the pre-activation is beta itself
    b0 = np.zeros(1, "float32")
    with np.errstate(all="raise"):
        y = conv_film_silu(h, K, b0, None, beta)
        gb = grad(lambda be: anp.sum(conv_film_silu(h, K, b0, None, be)))(beta)
    z64 = z.astype(float)
    want_y = z64 * expit(z64)
    want_d = expit(z64) * (1 + z64 * expit(-z64))
    ulp = lambda w: np.spacing(np.abs(w).astype("float32")).astype(float)  # noqa: E731
    assert np.all(np.abs(y.ravel() - want_y) <= 4 * ulp(want_y))
    assert np.all(np.abs(gb.ravel() - want_d) <= 8 * ulp(want_d) + 8 * np.spacing(np.float32(1)) * expit(z64))


def test_values_only_and_traced_calls_agree():
    """Without a trace nothing is kept for a VJP; the values are the same either way."""
    args, up = _args(CASES[0], np.random.default_rng(2))
    traced = []
    grad(lambda a: (traced.append(conv_film_silu(a, *args[1:], upsample=up)), anp.sum(traced[-1]))[1])(args[0])
    np.testing.assert_array_equal(conv_film_silu(*args, upsample=up), traced[0]._value)


def test_bad_arguments_are_named():
    args, _ = _args(CASES[1], np.random.default_rng(0))
    h, K, b, gamma, beta, _ = args
    with pytest.raises(ValueError, match=r"K must be \(9C, C_out\)"):
        conv_film_silu(h, K[:-1], b, gamma, beta)
    with pytest.raises(ValueError, match="gamma must have shape"):
        conv_film_silu(h, K, b, gamma[:, 0], beta)
    with pytest.raises(ValueError, match="beta must have shape"):
        conv_film_silu(h, K, b, gamma, np.ones((3, 1, 1, 5)))
    with pytest.raises(ValueError, match="skip must have shape"):
        conv_film_silu(h, np.ones((9 * 5, 5)), b, gamma, beta, skip=np.ones((2, 5, 5, 2)), upsample=True)
    with pytest.raises(ValueError, match=r"h and skip must be maps \(n, H, W, C\), got h \(6, 6, 3\)"):
        conv_film_silu(h[0], K, b, gamma, beta)
    with pytest.raises(TypeError, match="K must be float32 or float64, got int64"):
        conv_film_silu(h, K.astype("int64"), b, gamma, beta)
    with pytest.raises(TypeError, match="h must be an array of the backend .* got list"):
        conv_film_silu(h.tolist(), K, b, gamma, beta)
    with pytest.raises(TypeError, match="h must be float32 or float64, got int64"):
        conv_film_silu(h.astype("int64"), K, b, gamma, beta)
    with pytest.raises(TypeError, match="b must be an array, got None"):
        conv_film_silu(h, K, None, gamma, beta)


def test_beta_none_is_zero():
    args, up = _args(CASES[1], np.random.default_rng(8))
    h, K, b, gamma, _, _ = args
    np.testing.assert_array_equal(conv_film_silu(h, K, b, gamma, None), conv_film_silu(h, K, b, gamma, 0 * args[4]))


def test_block_on_the_strict_stand_in_has_no_sync():
    from refscore.backends.strict_backend import count_syncs

    args, up = _args(CASES[0], np.random.default_rng(4), "float32")
    bk = backends.get("strict")
    sargs = [None if a is None else bk.asarray(a) for a in args]
    with count_syncs() as c:
        v, g = value_and_grad(lambda a: anp.sum(conv_film_silu(*a, upsample=up)))(sargs)
    assert c.syncs == 0, c.sites
    assert c.float64_arrays == 0
    ref = grad(lambda a: anp.sum(conv_film_silu(*a, upsample=up)))(list(args))
    for a, b in zip(g, ref):
        if b is not None:
            np.testing.assert_allclose(bk.to_numpy(a), b, rtol=2e-5, atol=2e-5)


def test_upsampled_correlation_refuses_mismatched_shapes():
    from refscore.models.upconv import upsampled_correlation

    h = np.ones((2, 3, 3, 4))
    with pytest.raises(ValueError, match=r"K9 must be \(9, 4, C_out\)"):
        upsampled_correlation(h, np.ones((9, 3, 5)), np.empty((2, 6, 6, 5)), np)
    with pytest.raises(ValueError, match=r"out \(n, 2H, 2W, C_out\) = \(2, 6, 6, C_out\)"):
        upsampled_correlation(h, np.ones((9, 4, 5)), np.empty((2, 7, 6, 5)), np)


@pytest.mark.parametrize("up", [False, True])
def test_mixed_float_dtypes_compute_in_the_wider_one(up):
    """A float32 net on float64 rows (an ODE's state, say) gives what the composed operations give:
    float64, the same values and gradients."""
    case = (2, 3, 4, 3, 2, 4, up, 2, True)
    args, _ = _args(case, np.random.default_rng(9))
    mixed = [a if a is None or i in (0, 5) else a.astype("float32") for i, a in enumerate(args)]
    ours, ref = conv_film_silu(*mixed, upsample=up), composed(*mixed, upsample=up)
    assert ours.dtype == ref.dtype == np.float64
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-13)
    g_ours = grad(lambda h_: anp.sum(conv_film_silu(h_, *mixed[1:], upsample=up) ** 2))(mixed[0])
    g_ref = grad(lambda h_: anp.sum(composed(h_, *mixed[1:], upsample=up) ** 2))(mixed[0])
    np.testing.assert_allclose(g_ours, g_ref, rtol=1e-11, atol=1e-12)
