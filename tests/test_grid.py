"""The shared-border grid (refscore.models.grid): its layout, every tap read landing on a pixel or a
zero, its taps and their adjoints against a dense reference, and every product of a U-Net step on
the host going through the in-place BLAS gemm (a taps array in Fortran order once sent every
input-gradient product down the matmul-and-add road, silently: 4.4 ms a product instead of 3.5)."""
from unittest import mock

import numpy as np
import pytest
from autograd import value_and_grad

from refscore import losses
from refscore.models import ConvScoreNet, conv
from refscore.models.conv import tap_offsets
from refscore.models.grid import Grid

SHAPES = [(1, 1, 1), (2, 3, 4), (3, 5, 2), (2, 7, 7)]


@pytest.mark.parametrize("n, H, W", SHAPES)
def test_layout_rows_and_border(n, H, W):
    """Pixel (e, i, j) at row e R + (i+1)(W+1) + j+1; every other row zero; (H+1)(W+1) rows an example."""
    g = Grid(n, H, W)
    h = np.arange(1, n * H * W + 1, dtype=float).reshape(n, H, W, 1)
    F = g.pad(h, np)
    assert F.shape == (n * (H + 1) * (W + 1) + W + 2, 1)
    rows = [e * (H + 1) * (W + 1) + (i + 1) * (W + 1) + j + 1 for e in range(n) for i in range(H) for j in range(W)]
    np.testing.assert_array_equal(F[rows, 0], h.ravel())
    border = np.setdiff1d(np.arange(F.shape[0]), rows)
    assert np.all(F[border] == 0) and len(border) == F.shape[0] - n * H * W
    np.testing.assert_array_equal(g.interior(F), h)
    assert (g.lo, g.hi) == (rows[0], rows[-1] + 1)


@pytest.mark.parametrize("n, H, W", SHAPES)
def test_every_tap_of_every_pixel_reads_its_neighbour_or_a_zero(n, H, W):
    """Row r + o_ab of pixel (i, j) holds pixel (i+a-1, j+b-1) of the same example, or zero outside the map."""
    g = Grid(n, H, W)
    h = np.arange(1, n * H * W + 1, dtype=float).reshape(n, H, W, 1)
    F = g.pad(h, np)[:, 0]
    for k, off in enumerate(tap_offsets(g.Wp)):
        a, b = divmod(k, 3)
        want = np.zeros((n, H + 2, W + 2))
        want[:, 1:-1, 1:-1] = h[..., 0]
        want = want[:, a:a + H, b:b + W]
        r = g.interior(np.arange(g.rows)[:, None])[..., 0] + off
        assert r.min() >= 0 and r.max() < g.rows
        np.testing.assert_array_equal(F[r], want, err_msg=f"tap {(a, b)}")


def _dense_correlation(h, K):
    n, H, W, C = h.shape
    P = np.pad(h, ((0, 0), (1, 1), (1, 1), (0, 0)))
    return sum(P[:, a:a + H, b:b + W] @ K[(3 * a + b) * C:(3 * a + b + 1) * C] for a in range(3) for b in range(3))


@pytest.mark.parametrize("n, H, W", SHAPES)
def test_taps_and_their_adjoints_against_a_dense_correlation(n, H, W):
    """<taps(x), y> = <x, input_grad(y)> = <K, kernel_grad(x, y)>, and taps = the dense correlation."""
    rng = np.random.default_rng(n * 100 + H * 10 + W)
    C, Co = 3, 5
    g = Grid(n, H, W)
    x, y, K = rng.normal(size=(n, H, W, C)), rng.normal(size=(n, H, W, Co)), rng.normal(size=(9 * C, Co))
    out = g.taps(g.pad(x, np), K, g.empty(Co, x.dtype, np), np)
    np.testing.assert_allclose(g.interior(out), _dense_correlation(x, K), rtol=1e-12, atol=1e-12)
    Y = g.pad(y, np)
    lhs = np.sum(g.interior(out) * y)
    np.testing.assert_allclose(np.sum(x * g.interior(g.input_grad(Y, K, C, np))), lhs, rtol=1e-11)
    np.testing.assert_allclose(np.sum(K * g.kernel_grad(g.pad(x, np), Y, np)), lhs, rtol=1e-11)


def test_every_product_of_a_host_step_runs_through_the_in_place_gemm():
    """In a float32 U-Net step on NumPy every tap product with >= GEMM_MIN_OUT output channels and
    at least FEW_CHANNELS input channels gets the in-place BLAS gemm (C-ordered operands)."""
    rng = np.random.default_rng(0)
    net = ConvScoreNet(12, 8, rng=rng, dtype="float32", global_width=6, film=True, n_freq=4, emb=8)
    x = rng.random((4, 144)).astype("float32")
    loss = lambda p: losses.ncsn(net.score_fn(p), x, np.array([3.0, 1.0, 0.3, 0.1], "float32"),  # noqa: E731
                                 levels="sample", weighting=net.loss_weight, level_index=np.arange(4),
                                 z=np.ones_like(x))
    missed, seen, real = [], [], conv._accumulating_gemm

    def spy(Pf, K, out):
        got = real(Pf, K, out)
        seen.append(K.shape)
        if got is None and K.shape[1] >= conv.GEMM_MIN_OUT:
            missed.append((Pf.shape, K.shape, K.flags.c_contiguous, Pf.flags.c_contiguous))
        return got

    with mock.patch.object(conv, "_accumulating_gemm", spy):
        value_and_grad(loss)(net.params)
    assert len(seen) > 20 and not missed, missed


def test_bad_inputs_are_named():
    """Sizes that are not positive integers, maps of another shape and arrays that are not this
    grid's flat layout are refused with the expected shape, before any work."""
    for bad in ((0, 3, 3), (2, -1, 3), (2, 3, 2.5), (True, 3, 3)):
        with pytest.raises(ValueError, match=r"must be an integer >= 1"):
            Grid(*bad)
    g = Grid(2, 3, 4)
    with pytest.raises(ValueError, match=r"h must be \(2, 3, 4, C\) to go on this grid, got \(2, 4, 3, 1\)"):
        g.pad(np.zeros((2, 4, 3, 1)), np)
    with pytest.raises(ValueError, match=r"skip must be \(2, 3, 4, C\)"):
        g.pad(np.zeros((2, 3, 4, 1)), np, skip=np.zeros((1, 3, 4, 1)))
    P, K = g.pad(np.ones((2, 3, 4, 2)), np), np.ones((18, 4))
    with pytest.raises(ValueError, match=r"out must be a flat grid \(46, C\) of 2 maps 3×4"):
        g.taps(P, K, np.zeros((36, 4)), np)
    with pytest.raises(ValueError, match=r"P must be a flat grid \(46, C\)"):
        g.taps(P.reshape(-1), K, g.empty(4, P.dtype, np), np)
    with pytest.raises(ValueError, match=r"G must be a flat grid"):
        g.kernel_grad(P, np.zeros((40, 4)), np)
