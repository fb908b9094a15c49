"""Issue 36: the 3x3 convolution as nine shifted matrix products (refscore.models.conv) against
the im2col reference, its VJP by finite differences, the U-Net unchanged by it, and the strict
CuPy stand-in (no dispatch miss, no host sync) through a training step."""
from unittest import mock

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad, value_and_grad
from autograd.test_util import check_grads

from refscore import backends, losses
from refscore.models import ConvScoreNet, unet
from refscore.models.conv import conv3x3, conv_output_side
from refscore.models.activations import silu
from refscore.models.unet import im2col3x3
from refscore.pytree import tree_leaves


def im2col_conv(h, K, b, skip=None, stride=1, upsample=True):
    """The reference: stride-1 'same' correlation by im2col, then every stride-th pixel; with a
    skip, of [upsample(h), skip] made by concatenation (the U-Net's decoder input)."""
    if skip is not None:
        h = anp.concatenate([unet.upsample(h) if upsample else h, skip], axis=3)
    n, H, W, C = h.shape
    out = anp.reshape(anp.matmul(anp.reshape(im2col3x3(h), (n * H * W, 9 * C)), K) + b, (n, H, W, K.shape[1]))
    return out[:, ::stride, ::stride]


def im2col_block(h, K, b, gamma, beta, skip=None, upsample=False):
    """The reference U-Net block: the im2col correlation, FiLM and the SiLU primitive, composed."""
    out = im2col_conv(h, K, b, skip, upsample=upsample)
    return silu((out if gamma is None else out * gamma) + beta)


SHAPES = [(2, 5, 4, 3, 2), (1, 7, 5, 2, 3), (1, 1, 1, 1, 1), (3, 6, 6, 4, 1), (1, 9, 3, 1, 4), (2, 6, 5, 4, 6)]


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("n, H, W, C, Co", SHAPES)
def test_conv_matches_im2col_and_its_gradient_checks(n, H, W, C, Co, stride):
    rng = np.random.default_rng(n * 100 + H * 10 + W + stride)
    h, K, b = rng.normal(size=(n, H, W, C)), rng.normal(size=(9 * C, Co)), rng.normal(size=Co)
    out = conv3x3(h, K, b, stride)
    assert out.shape == (n, conv_output_side(H, stride), conv_output_side(W, stride), Co)
    np.testing.assert_allclose(out, im2col_conv(h, K, b, stride=stride), rtol=1e-12, atol=1e-12)
    check_grads(lambda h_, K_, b_: conv3x3(h_, K_, b_, stride), modes=["rev"], order=1)(h, K, b)
    # and the gradient equals the reference's, leaf by leaf (a random cotangent)
    g = rng.normal(size=out.shape)
    ours = grad(lambda a: anp.sum(conv3x3(*a, stride) * g))((h, K, b))
    ref = grad(lambda a: anp.sum(im2col_conv(*a, stride=stride) * g))((h, K, b))
    for x, y in zip(ours, ref):
        np.testing.assert_allclose(x, y, rtol=1e-11, atol=1e-11)


def test_every_accumulating_gemm_path_gives_the_correlation():
    """With >= GEMM_MIN_OUT output channels the host accumulates the taps in place (beta = 1), and makes
    the kernel gradient's transposed products (trans_a): through
    NumPy's own OpenBLAS by ctypes (the GIL released) where found, else SciPy's gemm, keeping its
    result where BLAS hands back a copy, else matmul and an add. The same values every way."""
    from refscore.models import _gemm, conv

    rng = np.random.default_rng(3)
    for dtype in ("float64", "float32"):
        h, K, b = (rng.normal(size=s).astype(dtype) for s in ((2, 7, 6, 5), (45, 8), (8,)))
        ref = im2col_conv(h.astype(float), K.astype(float), b.astype(float), upsample=False)
        tol = 1e-12 if dtype == "float64" else 1e-5
        scipy_gemm = _gemm._scipy_gemm(dtype)

        def copying(A, B, C, beta, trans_a=False):  # BLAS may work on a copy of C: the wrapper must keep the result
            with mock.patch("numpy.shares_memory", return_value=False):
                return scipy_gemm(A, B, C, beta, trans_a=trans_a)

        G = rng.normal(size=(2, 7, 6, 8)).astype(dtype)
        ref_dK = grad(lambda k: anp.sum(im2col_conv(h.astype(float), k, b.astype(float), upsample=False) * G))(
            K.astype(float))  # the kernel gradient: the transposed products (trans_a)

        paths = {"ctypes": _gemm.cblas_gemm(dtype), "scipy": scipy_gemm, "scipy, a copy": copying, "matmul": None}
        for name, path in paths.items():
            if name == "ctypes" and path is None:
                continue  # a NumPy without its bundled OpenBLAS (e.g. conda's): SciPy's gemm is used
            with mock.patch.object(conv, "accumulating_gemm", lambda dt, p=path: p):
                np.testing.assert_allclose(conv3x3(h, K, b), ref, rtol=tol, atol=tol, err_msg=name)
                dK = grad(lambda k: anp.sum(conv3x3(h, k, b) * G))(K)
                np.testing.assert_allclose(dK, ref_dK, rtol=tol, atol=10 * tol * np.max(np.abs(ref_dK)), err_msg=name)
                assert (conv._accumulating_gemm(h.reshape(-1, 5), K, np.empty((4, 8), dtype)) is None) == (path is None)


def test_numpy_wheel_openblas_is_found_for_the_ctypes_gemm():
    """NumPy's PyPI wheels bundle OpenBLAS (as libscipy_openblas64_); the ctypes path finds it, so the
    convolution's products release the GIL and sharded steps use both cores."""
    import glob
    import os

    from refscore.models import _gemm

    libs = glob.glob(os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs", "libscipy_openblas64_*"))
    if not libs:
        pytest.skip("this NumPy has no bundled OpenBLAS (not a PyPI wheel): SciPy's gemm is the fallback")
    for dtype in ("float32", "float64"):
        gemm = _gemm.cblas_gemm(dtype)
        assert gemm is not None
        A, B, C = (np.arange(s[0] * s[1], dtype=dtype).reshape(s) / 7 for s in ((5, 3), (3, 4), (5, 4)))
        want = A @ B + C
        assert gemm(A, B, C, 1.0) is C
        np.testing.assert_allclose(C, want, rtol=1e-6)
        At = np.ascontiguousarray(A.T)  # (3, 5): C <- Atᵀ B + 0.5 C
        want = At.T @ B + 0.5 * C
        assert gemm(At, B, C, 0.5, trans_a=True) is C
        np.testing.assert_allclose(C, want, rtol=1e-6)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("upsample", [True, False])
def test_conv_of_an_upsampled_map_beside_a_skip(upsample, stride):
    """The decoder's input [upsample(h), skip] is made inside the padding copy: the same values
    and gradients (h, skip, K, b) as the concatenated map."""
    rng = np.random.default_rng(7 + stride)
    h = rng.normal(size=(2, 3, 2, 2))
    side = (6, 4) if upsample else (3, 2)
    skip, K, b = rng.normal(size=(2, *side, 3)), rng.normal(size=(45, 2)), rng.normal(size=2)
    f = lambda h_, K_, b_, s_: conv3x3(h_, K_, b_, stride, skip=s_, upsample=upsample)
    np.testing.assert_allclose(f(h, K, b, skip), im2col_conv(h, K, b, skip, stride, upsample), rtol=1e-12)
    check_grads(f, modes=["rev"], order=1)(h, K, b, skip)
    with pytest.raises(ValueError, match="skip must have shape"):
        conv3x3(h, K, b, skip=skip[:, :2], upsample=upsample)


def test_conv_without_bias_and_bad_arguments():
    rng = np.random.default_rng(0)
    h, K = rng.normal(size=(1, 4, 4, 2)), rng.normal(size=(18, 3))
    np.testing.assert_allclose(conv3x3(h, K), im2col_conv(h, K, 0.0), rtol=1e-12)
    with pytest.raises(ValueError, match="K must have 9 \\* C = 18 rows"):
        conv3x3(h, K[:9])
    with pytest.raises(ValueError, match="stride must be a positive integer, got 0"):
        conv3x3(h, K, stride=0)


def _trained_looking_net(dtype, seed=0):
    bk = backends.get("numpy")
    rng = np.random.default_rng(seed)
    data = rng.uniform(size=(8, 144))
    net = ConvScoreNet(12, 4, rng=bk.rng(seed), dtype=dtype, data=data, global_width=6, film=True, n_freq=4, emb=8)
    for q in net.params.values():  # off the zero output layer, so every path carries signal
        for k in q:
            q[k] = (q[k] + 0.1 * rng.normal(size=q[k].shape)).astype(dtype)
    return net, rng.normal(size=(5, 144)).astype(dtype), np.array([9.0, 3.0, 1.0, 0.3, 0.05], dtype=dtype)


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-11), ("float32", 2e-4)])
def test_conv_score_net_unchanged_by_the_new_convolution(dtype, rtol):
    """The same parameters give the im2col network's score and loss gradient, to round-off."""
    net, x, sig = _trained_looking_net(dtype)
    z = np.random.default_rng(1).normal(size=x.shape).astype(dtype)
    loss = lambda p: losses.ncsn(net.score_fn(p), x, sig, levels="sample", weighting=net.loss_weight,
                                 level_index=np.arange(5), z=z)
    ours = net.apply(net.params, x, sig), value_and_grad(loss)(net.params)
    with mock.patch.object(unet, "conv3x3", im2col_conv), mock.patch.object(unet, "conv_film_silu", im2col_block):
        ref = net.apply(net.params, x, sig), value_and_grad(loss)(net.params)
    assert ours[0].dtype == np.dtype(dtype)
    np.testing.assert_allclose(ours[0], ref[0], rtol=rtol, atol=rtol * np.max(np.abs(ref[0])))
    np.testing.assert_allclose(ours[1][0], ref[1][0], rtol=rtol)
    for (path, g), (_, g_ref) in zip(tree_leaves(ours[1][1]), tree_leaves(ref[1][1])):
        assert g.dtype == np.dtype(dtype), path
        np.testing.assert_allclose(g, g_ref, rtol=rtol, atol=rtol * np.max(np.abs(g_ref)), err_msg=path)


def test_training_step_on_the_strict_stand_in_has_no_sync():
    """Every call CuPy would refuse raises in the stand-in; the step waits for the device nowhere
    and, in float32, makes no float64 array."""
    from refscore.backends.strict_backend import count_syncs

    net64, x, sig = _trained_looking_net("float32")
    bk = backends.get("strict")
    net = ConvScoreNet(12, 4, rng=bk.rng(0), dtype="float32", mean=bk.asarray(net64.mean), sigma_data=net64.sigma_data,
                       global_width=6, film=True, n_freq=4, emb=8)
    net.params = {k: {kk: bk.asarray(v) for kk, v in q.items()} for k, q in net64.params.items()}
    xs, z = bk.asarray(x), bk.asarray(np.ones_like(x))  # the levels stay on the host, as in training
    k = bk.asarray(np.arange(5))
    loss = lambda p: losses.ncsn(net.score_fn(p), xs, sig, levels="sample", weighting=net.loss_weight, level_index=k, z=z)
    with count_syncs() as c:
        L, g = value_and_grad(loss)(net.params)
    assert c.syncs == 0, c.sites
    assert c.float64_arrays == 0
    np.testing.assert_allclose(bk.to_numpy(g["e1a"]["K"]), value_and_grad(
        lambda p: losses.ncsn(net64.score_fn(p), x, sig, levels="sample", weighting=net64.loss_weight,
                              level_index=np.arange(5), z=np.ones_like(x)))(net64.params)[1]["e1a"]["K"], rtol=1e-5, atol=1e-6)


def test_torch_twin_parity_and_a_planted_difference():
    """The bench's torch twin is the same function, and its parity check catches one changed leaf."""
    torch = pytest.importorskip("torch")
    from refscore.apps import bench_unet
    from refscore.apps.bench import Context

    ctx = Context(backends.get("numpy"), "float64", True, 0, torch, sizes={"n_unet": 3})
    state = bench_unet.unet_setup(ctx)  # runs check_parity
    assert bench_unet.check_parity(ctx, state)["parameters"] > 0
    with torch.no_grad():
        state["twin"].p["d2/S"][0, 0] += 1e-3
    with pytest.raises(ValueError, match="torch twin differs"):
        bench_unet.check_parity(ctx, state)
