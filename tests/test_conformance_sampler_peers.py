"""Issue 33 E: real libraries' MALA, random-walk Metropolis and Langevin steps pass the sampler
exactness checker (no false alarm). blackjax, TorchEBM and ebmkit are optional (skipped, with the
reason, where not installed); TorchEBM's and ebmkit's steps are ULA, checked by the 'ula' mode against
ULA's own stationary law.

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
    cache = {}  # keyed on the target object itself (held alive by the key), never on id()

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
        if (kind, target, h) not in cache:
            lp = logdensity(target)
            if kind == "ula":
                one = diffusions.overdamped_langevin(jax.value_and_grad(lp))
                init = jax.vmap(lambda q: diffusions.DiffusionState(q, *jax.value_and_grad(lp)(q)))
                step = lambda k, s: one(k, s, h)  # noqa: E731
            else:
                alg = blackjax.mala(lp, h) if kind == "mala" else blackjax.additive_step_random_walk(
                    lp, blackjax.mcmc.random_walk.normal(h * jnp.ones(target.d)))
                init, step = jax.vmap(alg.init), (lambda k, s: alg.step(k, s)[0])
            cache[kind, target, h] = jax.jit(init), jax.jit(jax.vmap(step))
        return cache[kind, target, h]

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


def _torch_energy(torch, target):
    """The target's energy -log pi as a torch function whose gradient is -score (the libraries take
    energies and differentiate them with torch.autograd)."""

    class Energy(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            a = x.detach().numpy()
            ctx.save_for_backward(torch.as_tensor(-target.score(a), dtype=x.dtype))
            return torch.as_tensor(-target.log_prob(a), dtype=x.dtype)

        @staticmethod
        def backward(ctx, g):
            (minus_score,) = ctx.saved_tensors
            return g[:, None] * minus_score

    return Energy.apply


def _torch_ula(library):
    torch = pytest.importorskip("torch", reason=f"{library} needs torch (optional: pip install torch==2.13.0)")
    pytest.importorskip("torchebm" if library == "torchebm" else "ebm",
                        reason=f"{library} is optional (pip install {library})")
    torch.set_default_dtype(torch.float64)

    def step(state, h, rng, target):
        x = torch.as_tensor(np.asarray(state, dtype=np.float64))
        energy = _torch_energy(torch, target)
        gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
        if library == "torchebm":
            from torchebm.core import BaseModel
            from torchebm.samplers import LangevinDynamics

            class Model(BaseModel):
                def forward(self, y):
                    return energy(y)

            out = LangevinDynamics(Model(dtype=torch.float64), step_size=h, noise_scale=1.0,
                                   dtype=torch.float64).sample(x=x, n_steps=1, generator=gen)
        else:
            from ebm.samplers import LangevinDynamics

            torch.manual_seed(int(rng.integers(2**31)))  # ebmkit draws from torch's global generator
            out = LangevinDynamics(step_size=h, steps=1).sample(energy, x)
        return out.detach().numpy()

    return step


@pytest.mark.parametrize("library", ["torchebm", "ebmkit"])
def test_torch_libraries_langevin_steps_pass_as_ula(library):
    report = check_sampler_exactness(_torch_ula(library), "ula", seed=1)
    assert report.passed, str(report)
