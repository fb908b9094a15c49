"""Issue 33 E: real libraries' MALA, random-walk Metropolis and Langevin steps pass the sampler
exactness checker (no false alarm). blackjax is optional (skipped where not installed); TorchEBM and
ebmkit need torch, not installed here (their steps are ULA: the 'ula' mode checks them the same way).

The adapter hands blackjax the target's NumPy log-density through ``jax.pure_callback``, with the
target's score as its gradient (``jax.custom_vjp``), and vmaps blackjax's one-chain kernel over the
chains under ``jax.jit``; keys come from ``rng.integers``, so the exact replay does not apply and the
statistical tests decide."""
import numpy as np
import pytest

from refscore.conformance import check_sampler_exactness

pytestmark = pytest.mark.slow


def _blackjax_steps():
    jax = pytest.importorskip("jax", reason="blackjax is optional (pip install blackjax)")
    blackjax = pytest.importorskip("blackjax", reason="blackjax is optional (pip install blackjax)")
    from blackjax.mcmc import diffusions
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    cache = {}

    def logdensity(target):
        d = target.d

        def call(fn, shape):
            return lambda x: jax.pure_callback(
                lambda a: np.asarray(fn(np.asarray(a).reshape(-1, d))).reshape(np.shape(a)[:-1] + shape),
                jax.ShapeDtypeStruct(x.shape[:-1] + shape, jnp.float64), x, vmap_method="expand_dims")

        logp, score = call(target.log_prob, ()), call(target.score, (d,))
        f = jax.custom_vjp(logp)
        f.defvjp(lambda x: (logp(x), x), lambda x, g: (g[..., None] * score(x),))
        return f

    def kernel(kind, target, h):
        if (kind, id(target), h) not in cache:
            lp = logdensity(target)
            if kind == "ula":
                one = diffusions.overdamped_langevin(jax.value_and_grad(lp))
                init = jax.vmap(lambda q: diffusions.DiffusionState(q, *jax.value_and_grad(lp)(q)))
                step = lambda k, s: one(k, s, h)  # noqa: E731
            else:
                alg = blackjax.mala(lp, h) if kind == "mala" else blackjax.additive_step_random_walk(
                    lp, blackjax.mcmc.random_walk.normal(h * jnp.ones(target.d)))
                init, step = jax.vmap(alg.init), (lambda k, s: alg.step(k, s)[0])
            cache[kind, id(target), h] = jax.jit(init), jax.jit(jax.vmap(step))
        return cache[kind, id(target), h]

    def make(kind):
        def step(state, h, rng, target):
            init, run = kernel(kind, target, h)
            state = state if hasattr(state, "position") else init(jnp.asarray(state))
            keys = jax.random.split(jax.random.PRNGKey(int(rng.integers(2**31))), state.position.shape[0])
            return run(keys, state)
        return step

    return make


@pytest.mark.parametrize("mode", ["mala", "rwmh", "ula"])
def test_blackjax_steps_pass(mode):
    report = check_sampler_exactness(_blackjax_steps()(mode), mode, seed=1)
    assert report.passed, str(report)
    assert "rng.integers" in str(report)  # keys from the generator: no replay, the statistics decide
