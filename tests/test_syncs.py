"""No host synchronisation inside a sampler step or a training step (issue 12), counted by the
strict CuPy stand-in (`count_syncs`), through the public API only.

A sync (`bool`, `float`, `int`, `item`, `get`, `to_numpy` of a device array) blocks the host
until the GPU queue drains, so one per step serialises the whole loop. Drivers may sync at entry
(validation) and exit (the divergence report): the per-step cost is measured as the difference
between a run of n + k steps and a run of n steps, which must be 0.
"""
import pytest

from refscore import backends, losses, samplers, sde as sdelib
from refscore.backends.strict_backend import count_syncs, sync_count
from refscore.energies import GaussianBernoulliRBM, GaussianMixture
from refscore.energies import MLPEnergy
from refscore.training import train

S = backends.get("strict")


def _gmm():
    return GaussianMixture([0.3, 0.7], [[-1.0, 0.0], [1.0, 0.5]], [0.5, 0.8], backend="strict")


def _syncs(f):
    with count_syncs() as c:
        f()
    return c


def test_the_counter_counts_every_kind_of_sync_and_nothing_else():
    a = S.asarray([[1.0, 2.0]])
    before = sync_count()
    c = _syncs(lambda: (bool(a[0, 0] > 0), float(a[0, 0]), int(a[0, 1]), a[0, 0].item(), a.get(),
                        S.to_numpy(a), a.tolist()))
    assert c.syncs == 7 and sync_count() - before == 7
    c = _syncs(lambda: (a * 2.0 + a).sum(axis=1) @ S.xp.ones((1,)))  # device-only work
    assert c.syncs == 0 and c.float64_arrays > 0


@pytest.mark.parametrize("driver", ["langevin", "mala", "rwmh", "annealed", "gibbs", "reverse_sde",
                                    "reverse_diffusion"])
def test_drivers_do_not_sync_per_step(driver):
    g, rng = _gmm(), S.rng(0)
    x = g.sample(32, rng)
    rbm = GaussianBernoulliRBM(S.asarray([[0.5, -0.2], [0.1, 0.3]]), S.asarray([0.0, 0.1]),
                               S.asarray([0.2, -0.1]))
    run = {
        "langevin": lambda n: samplers.langevin(g.score, x, 0.05, n, rng),
        "mala": lambda n: samplers.mala(g.unnormalized_log_prob, x, 0.05, n, rng, score_fn=g.score),
        "rwmh": lambda n: samplers.rwmh(g.unnormalized_log_prob, x, 0.3, n, rng),
        "annealed": lambda n: samplers.annealed_langevin(lambda y, s: g.score(y), x, [1.0, 0.5], 0.01, n, rng),
        "gibbs": lambda n: samplers.rbm_gibbs(rbm, x, n, rng),
        "reverse_sde": lambda n: sdelib.reverse_sde_sample(sdelib.VPSDE(), lambda y, t: -y, x, rng, n_steps=n),
        "reverse_diffusion": lambda n: samplers.reverse_diffusion(lambda y, s: g.score(y), x,
                                                                  [2.0 * 0.8**i for i in range(n + 1)], rng),
    }[driver]
    short, long_ = _syncs(lambda: run(2)), _syncs(lambda: run(12))
    assert long_.syncs - short.syncs == 0, f"{driver}: syncs per step at {long_.sites[short.syncs:]}"


def _step_cases():
    g, rng = _gmm(), S.rng(1)
    x = g.sample(16, rng)
    rbm = GaussianBernoulliRBM(S.asarray([[0.5], [0.1]]), S.asarray([0.0, 0.1]), S.asarray([0.2]))
    st = samplers.mala_init(g.unnormalized_log_prob, x, g.score)
    return {
        "langevin_step": lambda: samplers.langevin_step(x, g.score, 0.05, rng),
        "mala_step": lambda: samplers.mala_step(st, g.unnormalized_log_prob, g.score, 0.05, rng),
        "rwmh_step": lambda: samplers.rwmh_step(st, g.unnormalized_log_prob, 0.3, rng),
        "annealed_step": lambda: samplers.langevin_step(x, g.perturbed(0.5).score, 0.01, rng),
        "rbm_gibbs_step": lambda: samplers.rbm_gibbs_step(rbm, x, rng),
        "reverse_sde_drift": lambda: sdelib.VPSDE().reverse_drift(lambda y, t: g.score(y), x, 0.5),
    }


@pytest.mark.parametrize("name", ["langevin_step", "mala_step", "rwmh_step", "annealed_step",
                                  "reverse_sde_drift"])
def test_a_step_with_an_energy_method_does_not_sync(name):
    c = _syncs(_step_cases()[name])
    assert c.syncs == 0, c.sites


def test_a_step_with_a_plain_score_function_does_not_sync():
    g, rng = _gmm(), S.rng(2)
    x = g.sample(16, rng)
    assert _syncs(lambda: samplers.langevin_step(x, lambda y: -y, 0.05, rng)).syncs == 0
    assert _syncs(_step_cases()["rbm_gibbs_step"]).syncs == 0


def _fit(n_steps, log_every):
    rng = S.rng(3)
    data = _gmm().sample(256, rng)
    model = MLPEnergy(2, (8,), rng=rng)
    loss = lambda p, b, r: losses.dsm(model.score_fn(p), b, 0.3, r)
    return lambda: train.fit(loss, model.params, data, rng, n_steps=n_steps, batch_size=32,
                             progress_bar=False, log_every=log_every)


def test_a_training_step_syncs_only_at_the_logging_points():
    # 10 more steps with log_every=5 add two logging points: at most one transfer each
    short, long_ = _syncs(_fit(10, 5)), _syncs(_fit(20, 5))
    assert long_.syncs - short.syncs <= 2, long_.sites[short.syncs:]



def _loss_cases():
    """Every loss, as ``loss(score_fn, x, rng)``: one call per training step."""
    return {
        "esm": lambda s, x, r: losses.esm(s, x, lambda y: -y),
        "ism": lambda s, x, r: losses.ism(s, x),
        "ssm": lambda s, x, r: losses.ssm(s, x, r, n_projections=2),
        "ssm_vr_rademacher": lambda s, x, r: losses.ssm(s, x, r, projection="rademacher", variance_reduced=True),
        "dsm": lambda s, x, r: losses.dsm(s, x, 0.3, r),
        "ncsn_all": lambda s, x, r: losses.ncsn(lambda y, sig: s(y), x, [1.0, 0.3], r),
        "ncsn_sample": lambda s, x, r: losses.ncsn(lambda y, sig: s(y), x, [1.0, 0.3], r, levels="sample"),
        "vp_denoising": lambda s, x, r: losses.vp_denoising(lambda y, b: s(y), x, 0.3, r),
        "vp_denoising_per_row": lambda s, x, r: losses.vp_denoising(
            lambda y, b: s(y), x, S.xp.full((x.shape[0],), 0.3), r),
    }


@pytest.mark.parametrize("name", list(_loss_cases()))
def test_a_loss_and_its_gradient_do_not_sync(name):
    from autograd import grad

    rng = S.rng(4)
    x = _gmm().sample(16, rng)
    model = MLPEnergy(2, (8,), rng=rng)
    loss = _loss_cases()[name]
    c = _syncs(lambda: grad(lambda p: loss(model.score_fn(p), x, rng))(model.params))
    assert c.syncs == 0, c.sites


@pytest.mark.parametrize("name", list(_loss_cases()))
def test_fit_syncs_only_at_the_logging_points_for_every_loss(name):
    def run(n_steps):
        rng = S.rng(3)
        data = _gmm().sample(256, rng)
        model = MLPEnergy(2, (8,), rng=rng)
        loss = lambda p, b, r: _loss_cases()[name](model.score_fn(p), b, r)
        return lambda: train.fit(loss, model.params, data, rng, n_steps=n_steps, batch_size=32,
                                 progress_bar=False, log_every=5)

    short, long_ = _syncs(run(10)), _syncs(run(20))
    assert long_.syncs - short.syncs <= 2, long_.sites[short.syncs:]
