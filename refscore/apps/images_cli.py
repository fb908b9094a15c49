r"""``refscore images mnist``: a noise-conditional U-Net (:class:`refscore.models.ConvScoreNet`)
trained the NCSN way on 28×28 MNIST, 256 digits (``--samples``) drawn by the reverse-diffusion chain (or annealed
Langevin) with a final Tweedie denoise, judged on the test split without the model (:mod:`refscore.apps.image_quality`).

Writes into ``--out``: ``mnist_samples.npy`` (samples, 28, 28) in [0, 1], ``mnist_grid.png`` (samples
beside real test digits), ``results.json`` (metrics, verdicts, timings, settings),
``mnist_model.npz`` (the EMA network), ``mnist_run.json`` (the settings that made it: another
run's settings on the same ``--out`` are refused, a larger ``--steps`` extends the run; see
:mod:`refscore.apps.images_state`) and ``checkpoint/`` (training resumes from it). With
``--bpd N`` (default 256) the test digits' bits/dim by the probability-flow ODE go into
``results.json`` (:mod:`refscore.apps.bits_per_dim`). ``--sde vp`` samples and measures the same
trained net through the VP SDE (:meth:`refscore.sde.VPSDE.for_levels`) instead of the VE ladder.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Optional

import numpy as onp

from .digits_common import ema_decay, one_blas_thread

N_SAMPLES, SIDE = 256, 28
#: samples drawn per call of the sampler: the default run's 256 in one chunk; more come chunk after
#: chunk from the same generator, so the first 256 of a larger ``--samples`` are the default's
SAMPLE_CHUNK = 256
#: test digits whose bits/dim ``--bpd`` measures by default (Hutchinson's trace)
BPD_DIGITS = 256
DEFAULTS = {"channels": 16, "steps": 8000, "batch": 64, "lr": 2e-3, "levels": 200, "steps_each": 3,
            "step_boost": 1.0, "global_width": 128, "p_median": 2.0, "p_std": 1.2,
            "shards": 2, "threads": 2, "film": True, "sigma_min": 0.005}
# Measured on 2 cores, seed 0, 256 samples (share the classifier is >= 0.9 sure of / NN ratio; the
# share's binomial s.e. is 0.03), all with one BLAS thread (0.32 s a step at C = 16, faster than two):
# - training levels: EDM's log-normal over the NCSNv2 levels, ln σ ~ N(ln(p_median σ_data), 1.2²)
#   (Karras et al. 2022: P_mean = −1.2 = ln(0.6 · 0.5) at σ_data = 0.5). Uniform over the 95 levels
#   (45 above σ = 0.5, 27 above σ = 2, where the denoiser ≈ the mean) gave 0.54 / 1.42 after 800 steps;
#   log-normal with the dense bottleneck 0.64 / 1.29. p_median 1.0 vs 0.6 at 2200 steps: 0.70 / 1.20
#   vs 0.70 / 1.21 (KID 0.45 vs 0.69);
# - global_width: the 7×7 bottleneck's dense layer; 512 instead of 128: 0.66 / 1.21 (no gain);
#   C = 24 for 1500 steps (the same time): 0.68 / 1.24;
# - the sampler: on one 2200-step net, annealed Langevin (60 geometric levels × 3) 0.62 / 1.36,
#   (100 × 5) 0.69 / 1.25; reverse diffusion on 100 Karras levels 0.70 / 1.21 at 100 evaluations
#   (EDM's Heun sampler on a 5600-step net, 1024 samples: 0.765 without churn, 0.795 with γ = 0.4,
#   beside reverse diffusion's 0.785: not adopted);
# - two cores (refscore.training.shards): 4 shards of 16 on 2 threads, 0.13 s a step instead of 0.28
#   (the same numbers on 1 or 2 threads), so 5600 steps fit where 2800 did: 0.78 / 1.16 (two seeds of
#   1024 samples: 0.785, 0.774), against 0.74 / 1.19 at 2800; batch 32 for 11200 steps: 0.77 / 1.18;
# - at 5600 steps, p_median 2.0 instead of 1.0 (more steps where the digit's shape is decided):
#   0.805 / 1.14 (1024 samples × 2: 0.784, 0.803), KID −0.02 instead of 0.10;
# - 7000 steps, p_median 2.0: 0.80 / 1.14; with FiLM (film=True, σ scales each block's channels
#   too): 0.82 / 1.13, KID −0.11;
# - shards 2 instead of 4 (batches of 32 make larger products; the bench's step 85 ms against 105 on
#   2 threads), so 8000 steps take 752 s where 7000 took 805 s; σ_min 0.005 instead of 0.01 (104
#   training levels instead of 95), so the dequantisation floor is 1.68 bits/dim instead of 2.68:
#   over 2048 samples 0.800 / 1.13 (s.e. 0.009), KID 0.03; bits/dim 3.12 ± 0.03 (was 3.58 ± 0.03);
# - the sampler's levels on that net, 1024 samples each (s.e. 0.012): 100 Karras levels 0.809 / 1.13,
#   200 0.841 / 1.08, 300 0.826 / 1.07, 400 0.833 / 1.06; 100 levels with one Langevin corrector step
#   each (snr 0.16, Song et al. 2021, Alg. 2; 200 evaluations) 0.832 / 1.07: 200 levels, the
#   cheapest of the plateau (sampling 2048 digits 150 s instead of 76).
# - the shared-border grid (refscore.models.grid) made the step 0.078 s (8000 steps 624 s); the saved
#   time as 10000 steps instead: 0.827 / 1.08 over 2048 samples, the same share as 8000 steps' 0.827 /
#   1.09 (bits/dim 3.07 against 3.12): 8000 kept, the time kept as margin.


@dataclasses.dataclass(frozen=True)
class ImagesSettings:
    r"""The settings of one ``refscore images mnist`` run, typed, built once from the command line
    (:meth:`from_args`) and passed to training, sampling and bits/dim; the defaults are the
    command's. ``out``: the output folder; ``backend``: a backend name (None: the default);
    ``data``: a folder of MNIST IDX files (None: ``make data``'s cache); ``steps``: training steps;
    ``sampler``: ``"reverse-diffusion"`` or ``"annealed"``; ``sde``: ``"ve"`` or ``"vp"``;
    ``levels``, ``steps_each``: the sampler's levels and Langevin steps per level; ``bpd``,
    ``bpd_exact``: test digits measured by Hutchinson's and the exact trace (0: skip); ``samples``:
    digits drawn and judged;
    ``progress``: progress bars and log lines. The numbers are checked by
    :func:`refscore.apps.images_state.check_arguments` before any work.

    .. math:: \text{run} = f(\text{settings}) \quad\text{(the same settings and seed give the same files)}
    """
    out: str
    seed: int = 0
    backend: Optional[str] = None
    data: Optional[str] = None
    steps: int = DEFAULTS["steps"]
    sampler: str = "reverse-diffusion"
    sde: str = "ve"
    levels: int = DEFAULTS["levels"]
    steps_each: int = DEFAULTS["steps_each"]
    bpd: int = BPD_DIGITS
    bpd_exact: int = 0
    progress: bool = True
    samples: int = N_SAMPLES

    @classmethod
    def from_args(cls, args):
        r"""The settings from the parsed ``refscore images`` command line (:func:`add_parser`).

        .. math:: \text{progress} = \neg\,\texttt{--no-progress}
        """
        return cls(out=os.fspath(args.out), seed=args.seed, backend=args.backend, data=args.data, steps=args.steps,
                   sampler=args.sampler, sde=args.sde, levels=args.levels, steps_each=args.steps_each,
                   bpd=args.bpd, bpd_exact=args.bpd_exact, progress=not args.no_progress, samples=args.samples)


def add_parser(sub, common):
    """The ``images`` sub-command and its ``mnist`` target; ``common`` adds --backend/--seed/--out."""
    p = sub.add_parser("images", help="real images: train, sample and judge a score model on 28x28 MNIST")
    p.add_argument("dataset", choices=["mnist"], help="the data set (mnist)")
    common(p)
    p.add_argument("--steps", type=int, default=DEFAULTS["steps"], help=f"training steps (default {DEFAULTS['steps']}); on the --out of "
                   "an earlier run, more steps extend it (fewer are refused, as are other settings)")
    p.add_argument("--data", default=None, help="a folder with the standard MNIST IDX files (default: make data's cache)")
    p.add_argument("--sampler", choices=["reverse-diffusion", "annealed"], default="reverse-diffusion",
                   help="reverse diffusion on Karras levels (default) or annealed Langevin on geometric levels")
    p.add_argument("--sde", choices=["ve", "vp"], default="ve",
                   help="the process the reverse-diffusion sampler and the bits/dim follow: ve (default) or vp, "
                        "the same trained net read as a scaled VE model (refscore.sde.VPSDE.for_levels)")
    p.add_argument("--levels", type=int, default=DEFAULTS["levels"], help=f"sampler noise levels (default {DEFAULTS['levels']})")
    p.add_argument("--steps-each", type=int, default=DEFAULTS["steps_each"], help="Langevin steps per level (annealed)")
    p.add_argument("--bpd", type=int, default=BPD_DIGITS, help="bits/dim of this many test digits by the PF-ODE, "
                   "Hutchinson's trace, one probe, each digit its own ODE (default 256: about 25 s on 2 cores; 0: skip)")
    p.add_argument("--bpd-exact", type=int, default=0, help="bits/dim of this many test digits with the exact "
                   "trace (784 passes per ODE evaluation: about 100 s a digit on 2 cores; default 0)")
    p.add_argument("--samples", type=int, default=N_SAMPLES, help=f"digits to draw and judge (default {N_SAMPLES}; "
                   f"drawn {SAMPLE_CHUNK} at a time, the first {SAMPLE_CHUNK} those of the default run)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _load(s):
    """Host rows of the train/test splits, float32, flattened to (n, 784), with their labels."""
    from .. import datasets

    load = lambda split: datasets.mnist(split, path=s.data, return_labels=True, backend="numpy", dtype="float32")
    (xtr, ytr), (xte, yte) = load("train"), load("test")
    host = lambda a: onp.asarray(a).reshape(len(a), -1)
    return host(xtr), onp.asarray(ytr), host(xte), onp.asarray(yte)


def _train(s, bk, xtr, log, state):
    r"""NCSN training of the U-Net: per-example levels of the NCSNv2 schedule
    (``ncsn(levels="sample")``), EDM's λ(σ), Adam with cosine decay, EMA; checkpoints in
    ``out/checkpoint``. A finished model in ``out/mnist_model.npz`` for the same steps is reused;
    a larger ``--steps`` extends the run from its checkpoint (``state``: :mod:`.images_state`).
    ``xtr``: the training rows already on the device (moved there once)."""
    from ..losses import ncsn
    from ..models import ConvScoreNet, lognormal_level_index, ncsnv2_schedule
    from ..training import checkpoint, fit_extras, train

    schedule = ncsnv2_schedule(xtr, sigma_min=DEFAULTS["sigma_min"])  # σ₁ by brute force, on the device
    saved, done = state.model_path, state.done_path
    if state.finished_steps() == s.steps:
        log(f"reusing the trained model {saved}")
        return state.load_model(s.backend), schedule, 0.0
    state.start()
    net = ConvScoreNet(SIDE, DEFAULTS["channels"], rng=bk.rng(s.seed), data=xtr,
                       global_width=DEFAULTS["global_width"], film=DEFAULTS["film"])
    p_mean = math.log(DEFAULTS["p_median"] * net.sigma_data)
    loss = lambda p, b, r: ncsn(net.score_fn(p), b, schedule.sigmas, r, levels="sample", weighting=net.loss_weight,
                                level_index=lognormal_level_index(schedule.sigmas, len(b), r, p_mean, DEFAULTS["p_std"]))
    log(f"training: {s.steps} steps, batch {DEFAULTS['batch']}, {len(schedule.sigmas)} levels "
        f"from sigma_1 = {schedule.sigmas[0]:.2f} to {schedule.sigmas[-1]:.3g}")
    t0 = time.time()
    lr = DEFAULTS["lr"]
    threads = host_threads(bk)
    shards = 1 if bk.name == "cupy" else DEFAULTS["shards"]  # the shards fix the numbers, whatever the threads
    try:
        params, hist = train.fit(loss, net.params, xtr, bk.rng(s.seed + 1), optimizer=train.adam(lr),
                                 n_steps=s.steps, batch_size=DEFAULTS["batch"], desc="mnist",
                                 checkpoint_dir=state.checkpoint_dir, checkpoint_every=100,
                                 progress_bar=s.progress, ema=state.ema(ema_decay(s.steps)),
                                 lr_schedule=fit_extras.cosine_schedule(lr, s.steps, warmup=min(100, s.steps // 10)),
                                 shards=shards, threads=threads)
    except checkpoint.CheckpointError as e:
        raise state.refused(e) from None
    net.params = hist.get("ema_params", params)
    net.save(saved)
    with open(done, "w") as f:
        json.dump({"steps": s.steps}, f)
    return net, schedule, time.time() - t0


def host_threads(bk):
    r"""Threads for the host's cores: ``DEFAULTS["threads"]`` (at most the cores) on NumPy, one on a
    GPU, which takes the whole batch at once (:class:`refscore.training.shards.RowThreads`).

    .. math:: \text{threads} = \min(\text{threads}_{\text{default}}, \text{cores})\ \text{(host)},\quad 1\ \text{(GPU)}
    """
    return 1 if bk.name == "cupy" else min(DEFAULTS["threads"], os.cpu_count() or 1)


def _sample(s, bk, net, schedule, xtr):
    """:func:`_draw` with the network's rows split over the host's threads."""
    from ..training.shards import RowThreads

    with RowThreads(net.score_fn(), bk, host_threads(bk)) as score_fn:
        return _draw(s, bk, net, schedule, xtr, score_fn)


def _draw(s, bk, net, schedule, xtr, score_fn):
    r"""``--samples`` digits (:data:`SAMPLE_CHUNK` per call of :func:`_chain`, one generator), then
    Tweedie's :math:`x+\sigma_N^2 s_\theta(x,\sigma_N)` clipped to [0, 1]:

    * ``--sampler reverse-diffusion`` (default): the VE reverse-diffusion chain (Song et al. 2021,
      eq. 47; :func:`refscore.samplers.reverse_diffusion`) from :math:`\mu+\sigma_1 z` over
      ``--levels`` levels spaced as Karras et al. (2022, eq. 5, ρ = 7) from σ₁ to σ_L;
    * ``--sampler annealed``: annealed Langevin (Song & Ermon 2019, Alg. 1) from uniform noise
      over ``--levels`` geometric levels, ``--steps-each`` steps each, technique 4's step.

    Returns the host samples, the sampler's settings (for ``results.json``), the number of
    diverged chains and the seconds taken."""
    if s.sampler == "annealed" and s.sde != "ve":
        raise ValueError(f"--sde {s.sde} needs --sampler reverse-diffusion (annealed Langevin runs on levels)")
    rng, t0 = bk.rng(s.seed + 2), time.time()
    parts, diverged = [], 0
    for start in range(0, s.samples, SAMPLE_CHUNK):
        x, info, settings = _chain(s, bk, net, schedule, xtr, score_fn, rng, min(SAMPLE_CHUNK, s.samples - start))
        parts.append(onp.clip(bk.to_numpy(x), 0.0, 1.0).astype(onp.float64))
        diverged += int(onp.asarray(bk.to_numpy(info["diverged"])).sum())
    settings = {"sampler": s.sampler, **settings, "score_evaluations": int(info["n_steps"]) + 1,
                "samples": s.samples}
    return onp.concatenate(parts), settings, diverged, time.time() - t0


def _chain(s, bk, net, schedule, xtr, score_fn, rng, n):
    """One call of the sampler on ``n`` chains: (x, info, settings)."""
    from ..diffusion import karras_sigmas, noise_conditional_score
    from ..models import ncsnv2_schedule
    from ..samplers import annealed_langevin, reverse_diffusion

    lo, hi = float(schedule.sigmas[-1]), float(schedule.sigmas[0])
    shape = (n, SIDE * SIDE)
    if s.sampler == "annealed":
        plan = ncsnv2_schedule(xtr[:2], sigma_min=lo, L=s.levels, T=s.steps_each, sigma_max=hi)
        x0 = bk.uniform(rng, shape).astype(net.dtype)
        h = DEFAULTS["step_boost"] * plan.step_size
        x, info = annealed_langevin(score_fn, x0, plan.sigmas, h, plan.n_steps_each, rng,
                                    final_denoise=True, progress=s.progress)
        return x, info, {"levels": len(plan.sigmas), "steps_each": plan.n_steps_each, "sampler_step_size": float(h)}
    sig = karras_sigmas(onp.arange(s.levels), s.levels, lo, hi, rho=7.0)
    x0 = (net.mean + hi * bk.normal(rng, shape, net.dtype)).astype(net.dtype)
    sde = _sde(s, schedule)
    if sde is None:  # VE on the ladder itself (its discretisation, f = 0, G² = σ_i² − σ_{i+1}²)
        x, info = reverse_diffusion(score_fn, x0, sig, rng, final_denoise=True, progress=s.progress)
        return x, info, {"levels": len(sig), "rho": 7.0}
    ts = onp.minimum(sde.time_of_level(sig), 1.0)  # the same chain on the SDE's discretisation, same levels
    a0 = sde.marginal_coeffs(float(ts[0]))[0]
    x, info = reverse_diffusion(noise_conditional_score(score_fn, sde), (a0 * x0).astype(net.dtype),
                                rng=rng, sde=sde, times=ts, final_denoise=True, progress=s.progress)
    return x, info, {"levels": len(sig), "rho": 7.0, "sde": s.sde, "beta_min": sde.beta_min,
                     "beta_max": sde.beta_max}


def _sde(s, schedule):
    r"""None for ``--sde ve`` (the σ-ladder), else the VP SDE whose level :math:`s(t)/a(t)` runs over
    the training schedule's range, reaching σ₁ at t = 1 (:meth:`refscore.sde.VPSDE.for_levels`):
    the trained σ-conditioned net is its score through :math:`x_t = a(t)(x_0+\sigma(t)z)` (Karras et
    al. 2022, eq. 4), so VE and VP train the same net the same way.

    .. math:: s(x,t) = s_\theta\big(x/a(t),\ \sigma(t)\big)/a(t)
    """
    if s.sde == "ve":
        return None
    from ..sde import VPSDE

    return VPSDE.for_levels(float(schedule.sigmas[0]))


def score_scale(net, x, sigmas, rng, bk):
    r"""The learned score's size against its expected size at each level ``sigmas`` on rows ``x``
    noised at that level: for :math:`\tilde x = x+\sigma z` the true conditional score is
    :math:`-z/\sigma`, of norm about :math:`\sqrt d/\sigma`, so a healthy network gives

    .. math:: r(\sigma) = \frac{\sigma}{\sqrt d}\,\overline{\|s_\theta(\tilde x,\sigma)\|} \lesssim 1

    (slightly below one: the marginal score is the conditional one averaged over :math:`x`).
    A ratio far above one at some σ is where annealed Langevin chains blow up. Returns
    ``{σ: r(σ)}`` as host floats."""
    out = {}
    for s in sigmas:
        xt = x + float(s) * bk.normal(rng, x.shape, x.dtype)
        norm = bk.xp.sqrt(bk.xp.sum(net.apply(net.params, xt, float(s)) ** 2, axis=1))
        out[f"{float(s):.4g}"] = float(bk.xp.mean(norm)) * float(s) / x.shape[1] ** 0.5
    return out


def _bits_per_dim(s, bk, net, schedule, xte):
    r"""Bits/dim of the first ``--bpd`` test digits (Hutchinson, one probe) and of the first
    ``--bpd-exact`` (exact trace) by the probability-flow ODE of ``--sde`` (VE, or VP between the
    times of the same levels) from σ_L to σ₁ of the training schedule, 256 levels (:math:`x = (k+u)/256`, offset 8): the likelihood of the data perturbed by
    σ_L (:func:`refscore.sde.flow_bits_per_dim`). The same dequantised digits for both, each digit's
    bits/dim kept, and with both the paired difference on the digits both measured
    (:func:`refscore.apps.bits_per_dim.paired_difference`)."""
    from .bits_per_dim import measure_bits_per_dim, paired_difference

    k = onp.rint(255 * xte).astype(int)  # the bytes: the test rows are k/255
    sig = (float(schedule.sigmas[-1]), float(schedule.sigmas[0]))
    out = {}
    for key, n, exact in (("hutchinson", s.bpd, False), ("exact", s.bpd_exact, True)):
        if n > 0:
            out[key] = measure_bits_per_dim(net.score_fn(), k[:n], 256, *sig, bk.rng(s.seed + 4),
                                            dtype=net.dtype, exact=exact, trace_chunk=784 if exact else None,
                                            sde=_sde(s, schedule), threads=host_threads(bk),
                                            progress_bar=s.progress, keep_rows=True)
    if len(out) == 2:  # Hutchinson's against the exact trace, digit by digit on the digits both measured
        out["paired"] = paired_difference(out["hutchinson"]["bpd"], out["exact"]["bpd"])
    return out


def _write(s, samples, xte, results):
    """The samples, the grid of 100 of them beside 100 real test digits, and ``results.json``."""
    from . import plots

    onp.save(os.path.join(s.out, "mnist_samples.npy"), samples.reshape(-1, SIDE, SIDE))
    real = xte[onp.random.default_rng(s.seed).choice(len(xte), min(100, len(xte)), replace=False)]
    fig = plots.samples_beside_real(samples[:100], real, SIDE, (f"100 samples ({results['settings']['sampler']})",
                                                                       "100 real test digits"))
    fig.savefig(os.path.join(s.out, "mnist_grid.png"), dpi=110)
    with open(os.path.join(s.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)


def run_images(args):
    r"""Train (or resume), sample and judge; returns the exit status (0: every target met,
    1: some missed). ``args``: the parsed command line, or an :class:`ImagesSettings`; the
    settings are built from it once, here, and only they reach the work. The pipeline (Song & Ermon 2019, 2020; Karras et al. 2022 preconditioning):

    .. math:: \theta^\star = \arg\min_\theta \mathbb E_{i,x,z}\,\lambda(\sigma_i)\tfrac12
              \Big\|s_\theta(x+\sigma_i z,\sigma_i)+\frac{z}{\sigma_i}\Big\|^2,\qquad
              x \leftarrow x + (\sigma_i^2-\sigma_{i+1}^2)\,s_{\theta^\star}(x,\sigma_i)
              + \sqrt{\sigma_i^2-\sigma_{i+1}^2}\,z
    """
    from .. import backends
    from ..host_memory import keep_freed_memory
    from .images_state import check_arguments

    s = args if isinstance(args, ImagesSettings) else ImagesSettings.from_args(args)
    check_arguments(s)  # bad numbers and a missing scikit-learn: before any work
    bk = backends.get(s.backend)
    os.makedirs(s.out, exist_ok=True)
    keep_freed_memory()  # each step's feature maps reuse the last step's pages (refscore.host_memory)
    with one_blas_thread():  # small matrices: one BLAS thread is faster than two spinning for work
        return _run(s, bk)


def _run(s, bk):
    """:func:`run_images` on backend ``bk``."""
    from .image_quality import Judge
    from .images_state import TrainingState, check_splits, run_settings

    log = (lambda m: print(m, flush=True)) if s.progress else (lambda *a: None)
    t_all = time.time()
    state = TrainingState(s.out, run_settings(s, bk.name, DEFAULTS), s.steps)
    state.check()  # another run's --out, or fewer steps than it holds: refused before loading anything
    xtr, ytr, xte, yte = _load(s)
    check_splits(xte, ytr, s.data or "make data's MNIST cache")
    net, schedule, t_train = _train(s, bk, bk.asarray(xtr), log, state)  # the training rows: to the device once
    samples, sampler, diverged, t_sample = _sample(s, bk, net, schedule, xtr)
    t0 = time.time()
    sig = schedule.sigmas
    scale = score_scale(net, bk.asarray(xte[:256]), sig[:: max(1, len(sig) // 6)], bk.rng(s.seed + 3), bk)
    metrics = Judge(xtr, ytr, xte, seed=s.seed).measure(samples)
    metrics["verdicts"]["no diverged chain"] = diverged == 0
    metrics["passed"] = all(metrics["verdicts"].values())
    t_bpd = time.time()
    bpd = _bits_per_dim(s, bk, net, schedule, xte)
    t_bpd = time.time() - t_bpd
    results = {"metrics": metrics, "diverged_chains": diverged, "score_norm_over_sqrt_d_per_sigma": scale,
               "bits_per_dim": bpd, "seconds": {"train": t_train, "sample": t_sample,
                                                "judge": time.time() - t0 - t_bpd, "bits_per_dim": t_bpd,
                                                "total": time.time() - t_all},
        "settings": {**DEFAULTS, "steps": s.steps, **sampler, "train_levels": len(schedule.sigmas), "sigma_max": float(schedule.sigmas[0]),
                     "sigma_min": float(schedule.sigmas[-1]), "seed": s.seed, "backend": bk.name,
                     "n_train": len(xtr), "n_test": len(xte), "cpu_count": os.cpu_count()}}
    _write(s, samples, xte, results)
    for name, ok in metrics["verdicts"].items():
        log(f"  {'met   ' if ok else 'MISSED'} {name}")
    for name, ok in metrics["stretch"].items():  # issue 36's stricter targets: reported, not verdicts
        log(f"  {'met   ' if ok else 'short '} {name} (stretch target)")
    for key, r in bpd.items():
        se = "" if r["se"] is None else f" ± {r['se']:.3f}"
        if key == "paired":
            log(f"bits/dim, Hutchinson's minus the exact trace on the same {r['n']} digit(s): {r['mean']:.4f}{se}")
        else:
            log(f"bits/dim ({key}, {r['n']} test digits): {r['mean']:.3f}{se} ({r['nfev']} ODE evaluations)")
    log(f"KID {metrics['kid']:.4g} (real vs real {metrics['kid_real_vs_real']:.3g}, class means "
        f"{metrics['kid_class_means']:.4g}); total {results['seconds']['total']:.0f} s; wrote {s.out}")
    return 0 if metrics["passed"] else 1
