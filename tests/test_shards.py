"""Data-parallel gradients (refscore.training.shards): the shards' weighted gradients are the whole
batch's gradient, the thread count never changes a result, and a sharded run resumes bit for bit."""
import autograd.numpy as anp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from refscore import backends, datasets, losses, pytree
from refscore.training import train
from refscore.energies import MLPEnergy
from refscore.training.shards import ShardedValueAndGrad, shard_bounds

BK = backends.get("numpy")


def _quadratic_mean(p, batch, rng):
    """A mean over rows that uses no noise: sharded and whole-batch results must agree exactly."""
    return anp.mean(anp.sum(anp.tanh(batch @ p["W"] + p["b"]) ** 2, axis=1))


@settings(deadline=None, max_examples=40)
@given(n=st.integers(1, 40), shards=st.integers(1, 12), threads=st.integers(1, 3), seed=st.integers(0, 2**31 - 1))
def test_sharded_gradient_is_the_whole_batch_gradient(n, shards, threads, seed):
    r"""For a mean loss, :math:`\sum_s \frac{|B_s|}{|B|}\nabla L(x_{B_s}) = \nabla L(x_B)` (linearity)."""
    r = np.random.default_rng(seed)
    x = r.normal(size=(n, 3))
    p = {"W": r.normal(size=(3, 2)), "b": r.normal(size=2)}
    v1, g1 = ShardedValueAndGrad(_quadratic_mean, BK)(p, x, BK.rng(0))
    with ShardedValueAndGrad(_quadratic_mean, BK, shards, threads) as f:
        v2, g2 = f(p, x, BK.rng(0))
    scale = 1.0 + abs(v1)
    assert abs(v1 - v2) <= 1e-13 * scale
    for k in p:
        np.testing.assert_allclose(g2[k], g1[k], rtol=1e-12, atol=1e-13 * scale)


@given(n=st.integers(1, 500), shards=st.integers(1, 64))
def test_shard_bounds_cover_the_batch_in_near_equal_pieces(n, shards):
    b = shard_bounds(n, shards)
    sizes = np.diff(b)
    assert b[0] == 0 and b[-1] == n and len(sizes) == min(n, shards)
    assert sizes.min() >= 1 and sizes.max() - sizes.min() <= 1


def _setup():
    data = datasets.make("gaussian_mixture", 200, np.random.default_rng(0))
    model = MLPEnergy(2, (16, 16), rng=np.random.default_rng(1))
    return data, model, lambda p, b, r: losses.dsm(model.score_fn(p), b, 0.2, r)


def _fit(n_steps, ck=None, **kw):
    data, model, loss = _setup()
    return train.fit(loss, model.params, data, np.random.default_rng(7), n_steps=n_steps, batch_size=16,
                     progress_bar=False, checkpoint_dir=ck, checkpoint_every=10, **kw)


def _same(a, b):
    return all(np.array_equal(x, y) for (_, x), (_, y) in zip(pytree.tree_leaves(a), pytree.tree_leaves(b)))


def test_the_thread_count_never_changes_a_sharded_run():
    one, h1 = _fit(15, shards=4, threads=1)
    two, h2 = _fit(15, shards=4, threads=2)
    assert _same(one, two) and h1["loss"] == h2["loss"]
    plain, _ = _fit(15)
    assert not _same(one, plain)  # the shards draw their own noise: a different (equally valid) run


def test_a_sharded_run_resumes_bit_for_bit(tmp_path):
    full, h_full = _fit(35, shards=3, threads=2, ema=0.9)
    _fit(20, tmp_path / "ck", shards=3, threads=2, ema=0.9)
    resumed, h_res = _fit(35, tmp_path / "ck", shards=3, threads=2, ema=0.9)
    assert _same(full, resumed) and _same(h_full["ema_params"], h_res["ema_params"])
    assert h_full["loss"] == h_res["loss"]


@pytest.mark.parametrize("kw, word", [({"shards": 0}, "shards"), ({"threads": 0}, "threads"),
                                      ({"shards": 2.5}, "shards"), ({"threads": "2"}, "threads")])
def test_bad_shards_or_threads_are_named(kw, word):
    with pytest.raises(ValueError, match=f"{word} must be an integer >= 1"):
        _fit(2, **kw)


def test_traces_stay_nested_when_threads_interleave():
    """The interleaving that broke nested derivatives on 2 threads: A enters a trace, B enters,
    A leaves, B enters its inner trace. Autograd's own counter gives B's inner trace B's outer
    number; the installed stack gives it a larger one, and no live trace shares a number."""
    from autograd import tracer

    from refscore.backends.autograd_patches import UniqueTraceStack, install

    def interleave(stack):
        a = stack.new_trace()
        ta = a.__enter__()
        b = stack.new_trace()
        tb = b.__enter__()
        a.__exit__(None, None, None)
        inner = stack.new_trace()
        t_inner = inner.__enter__()
        inner.__exit__(None, None, None)
        b.__exit__(None, None, None)
        return ta, tb, t_inner

    ta, tb, t_inner = interleave(tracer.TraceStack())
    assert t_inner == tb  # autograd's counter: the bug, kept visible
    ta, tb, t_inner = interleave(UniqueTraceStack())
    assert t_inner > tb and len({ta, tb, t_inner}) == 3
    install()
    install()
    assert isinstance(tracer.trace_stack, UniqueTraceStack)


def test_nested_derivatives_on_threads_equal_the_serial_ones():
    """DSM of an energy model differentiates inside the loss (its score is a gradient); under
    load the shards' threads interleave, and every repetition must still equal one thread."""
    data, model, loss = _setup()
    batch = data[:64]
    with ShardedValueAndGrad(loss, BK, 8, 1) as one, ShardedValueAndGrad(loss, BK, 8, 2) as two:
        v1, g1 = one(model.params, batch, BK.rng(3))
        for _ in range(20):
            v2, g2 = two(model.params, batch, BK.rng(3))
            assert v2 == v1 and _same(g1, g2)


def _fit_cd(rng, k=2, **kw):
    data, _, _ = _setup()
    model = MLPEnergy(2, (8,), rng=np.random.default_rng(1))
    return train.fit_cd(model, data, rng, k=k, step_size=0.01, n_steps=6, batch_size=16, progress_bar=False, **kw)


def test_a_sharded_cd_run_is_the_run_its_seed_names():
    """Issue 31: fit_cd's loss drew its negatives from the outer generator it closed over, not the
    shard's: on threads the draws raced, and the run depended on more than the seed."""
    a, ha = _fit_cd(np.random.default_rng(5), shards=3, threads=2)
    b, hb = _fit_cd(np.random.default_rng(5), shards=3, threads=2)
    c, hc = _fit_cd(np.random.default_rng(5), shards=3, threads=1)
    assert _same(a, b) and _same(a, c) and ha["loss"] == hb["loss"] == hc["loss"]
    # the negatives come from the shards' generators: the outer one is advanced by fit alone
    # (minibatches and shard seeds), the same whatever number of Langevin steps the loss takes
    r1, r3 = np.random.default_rng(5), np.random.default_rng(5)
    _fit_cd(r1, k=1, shards=3)
    _fit_cd(r3, k=3, shards=3)
    assert r1.bit_generator.state == r3.bit_generator.state
    with pytest.raises(ValueError, match="persistent=True with shards=3"):
        _fit_cd(np.random.default_rng(5), persistent=True, shards=3)
