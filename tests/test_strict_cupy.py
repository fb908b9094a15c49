"""The strict backend fails where CuPy fails (issue 12): NumPy functions resolve to CuPy's
same-named function and bind against CuPy's recorded signature; ufuncs refuse NumPy operands.
Then every defect the stand-in exposed, checked fixed on it against the NumPy backend."""
import json
import os

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import elementwise_grad, grad

from refscore import backends
from refscore.backends import _cupy_rules
from refscore.energies import Banana, GaussianMixture, NealsFunnel, Ring

S, NP = backends.get("strict"), backends.get("numpy")


def test_the_table_records_cupy_and_its_signatures():
    t = _cupy_rules.table()
    assert t["cupy_version"].split(".")[0] == "14" and t["generator"] == "tools/cupy_signature_table.py"
    assert [p[0] for p in t["functions"]["reshape"]["params"]] == ["a", "newshape", "order", "copy"]
    assert t["functions"]["add"]["kind"] == "ufunc" and "at" in t["functions"]["add"]["methods"]


def test_dispatch_rejects_what_cupy_rejects():
    a = S.asarray([[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(TypeError, match="order=None.*_normalize_order"):
        np.reshape(a, (4,), order=None)
    with pytest.raises(TypeError, match="cupy.sum: CuPy .* rejects"):
        np.sum(a, initial=0.0)  # NumPy has `initial`, CuPy's sum does not
    with pytest.raises(TypeError, match="numpy.busday_count has no CuPy counterpart"):
        np.busday_count(a, a)
    with pytest.raises(TypeError, match="mixed with a StrictArray.*ufunc"):
        a * np.array(2.0)  # a 0-d numpy.ndarray operand: CuPy refuses it too
    with pytest.raises(TypeError, match="Wrong arguments.*where"):
        np.add(a, a, where=a > 0)
    with pytest.raises(AttributeError, match="module 'cupy' has no attribute 'busday_count'"):
        S.xp.busday_count
    with pytest.raises(TypeError, match="cupy.ndarray.reshape"):
        a.reshape((4,), order=None)
    # and what CuPy accepts passes: Python and NumPy scalars, CuPy's keywords
    assert float(np.sum(a * np.float64(2.0) + 1, axis=None, keepdims=False)) == 24.0
    assert np.reshape(a, (4,), order="C").shape == (4,)


def test_promotion_follows_nep50_as_cupy_14():
    a = S.asarray([1.0, 2.0], dtype="float32")
    assert (a * 2.0).dtype == np.float32  # a Python scalar is weak
    assert (a * np.float64(2.0)).dtype == np.float64  # a NumPy scalar is strong (CuPy's CScalar)
    assert (a / np.int64(2)).dtype == np.float64  # why the mean VJP must not divide by numpy.int64


def _non_diag_gmm(bk):
    covs = np.stack([[[1.0, 0.4], [0.4, 0.8]], [[0.5, -0.1], [-0.1, 0.7]]])
    return GaussianMixture([0.3, 0.7], [[-1.0, 0.5], [1.0, 0.0]], covs, backend=bk.name)


@pytest.mark.parametrize("case", ["gmm autograd score", "ring", "funnel", "banana"])
def test_reshape_vjp_works_on_device_arrays(case):
    """Defect 1: autograd's reshape VJP passes order=None, which CuPy rejects."""
    x = np.random.default_rng(0).normal(size=(5, 2)) + 0.3
    out = {}
    for bk in (S, NP):
        e = {"gmm autograd score": _non_diag_gmm(bk), "ring": Ring(), "funnel": NealsFunnel(),
             "banana": Banana()}[case]
        f = elementwise_grad(lambda y: -anp.sum(e.energy(y)))
        out[bk.name] = bk.to_numpy(f(bk.asarray(x)))
    np.testing.assert_allclose(out["strict"], out["numpy"], rtol=1e-12)


def test_noise_conditional_net_differentiates_in_an_array_sigma():
    from refscore.models.nn import NoiseConditionalScoreNet

    outs = {}
    for bk in (S, NP):
        net = NoiseConditionalScoreNet(2, (8, 8), rng=bk.rng(0))
        x, sig = bk.normal(bk.rng(1), (4, 2)), bk.asarray([0.1, 0.5, 1.0, 2.0])
        outs[bk.name] = bk.to_numpy(elementwise_grad(lambda s: anp.sum(net.apply(net.params, x, s) ** 2))(sig))
    np.testing.assert_allclose(outs["strict"], outs["numpy"], rtol=1e-10)


def test_mean_vjp_keeps_float32():
    """Defect 4: the mean VJP divided by numpy.int64, so float32 gradients were computed in float64."""
    from refscore.backends.strict_backend import count_syncs

    a = S.asarray(np.ones((3, 4)), dtype="float32")
    with count_syncs() as c:
        g = grad(lambda y: anp.mean(anp.mean(y * y, axis=0)))(a)
    assert g.dtype == np.float32 and c.float64_arrays == 0


def test_toy_samplers_take_any_backends_generator():
    """Defect 5: parameter-free toys refused a device Generator."""
    for e in (Banana(), NealsFunnel(3)):
        x = e.sample(10, S.rng(0))
        assert isinstance(x, S.array_type) and x.shape == (10, e.dim)
        np.testing.assert_array_equal(S.to_numpy(x), e.sample(10, NP.rng(0)))


def test_checkpoints_on_a_backend_without_generator_state_refuse_before_writing(tmp_path, monkeypatch):
    """Defect 3, emulated: the strict backend refusing generator state exactly as the CuPy backend does."""
    from refscore import losses
    from refscore.backends.cupy_backend import CupyBackend
    from refscore.backends.strict_backend import StrictBackend
    from refscore.energies import MLPEnergy
    from refscore.training import train

    monkeypatch.setattr(StrictBackend, "rng_state", CupyBackend.rng_state)
    rng = S.rng(0)
    data = S.normal(rng, (64, 2))
    model = MLPEnergy(2, (4,), rng=rng)
    with pytest.raises(NotImplementedError, match="cannot save a random Generator's state"):
        train.fit(lambda p, b, r: losses.dsm(model.score_fn(p), b, 0.3, r), model.params, data, rng,
                  n_steps=4, batch_size=8, checkpoint_dir=str(tmp_path / "ck"), checkpoint_every=2,
                  progress_bar=False)
    assert not os.path.exists(tmp_path / "ck") or os.listdir(tmp_path / "ck") == []


def test_table_is_valid_json_shipped_with_the_package():
    path = os.path.join(os.path.dirname(_cupy_rules.__file__), "cupy_signatures.json")
    assert json.load(open(path))["functions"]
