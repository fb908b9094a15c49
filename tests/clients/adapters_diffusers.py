"""Adapters from refscore's conformance cases to diffusers 0.42.1 schedulers, written as a user of
diffusers would write them: build the scheduler from the case's numbers, feed it the case's
noise through the name the scheduler draws with (``randn_tensor``), call ``step`` one timestep at
a time (``one_at_a_time``) and return what the objective asks for. diffusers is never a refscore
dependency: this module is imported only where it is installed (tests/clients/test_real_clients.py)."""
from fractions import Fraction
from unittest import mock

import numpy as np
import torch
from diffusers import (DDIMScheduler, DDPMScheduler, EDMEulerScheduler, EulerAncestralDiscreteScheduler,
                       EulerDiscreteScheduler, ScoreSdeVeScheduler)
from diffusers.schedulers.deprecated.scheduling_sde_vp import ScoreSdeVpScheduler

from refscore.conformance import one_at_a_time
from refscore.conformance import torch as ct

F64 = torch.float64


def feeding(*arrays):
    """A stand-in for diffusers' ``randn_tensor``: hands out the case's arrays, in order."""
    queue = [torch.as_tensor(np.asarray(a), dtype=F64) for a in arrays]

    def randn_tensor(shape, generator=None, device=None, dtype=None, layout=None):
        out = queue.pop(0)
        assert tuple(out.shape) == tuple(shape), f"diffusers drew {tuple(shape)}, the case has {tuple(out.shape)}"
        return out
    return randn_tensor


def patched(module, *arrays):
    return mock.patch(f"diffusers.schedulers.{module}.randn_tensor", feeding(*arrays))


def tensor(a):
    return torch.as_tensor(np.asarray(a), dtype=F64)


# ---- DDPMScheduler -------------------------------------------------------------------------------
def ddpm(betas, **config):
    return DDPMScheduler(num_train_timesteps=len(betas), trained_betas=np.asarray(betas), **config)


def ddpm_beta_schedule(case):
    """betas of DDPMScheduler(beta_schedule=...); improved DDPM's 1000/T scales β0, β1 as its users do."""
    k = 1000 / case["T"] if case["scale_1000_over_T"] else 1.0
    kind = {"linear": "linear", "scaled_linear": "scaled_linear", "cosine": "squaredcos_cap_v2"}[case["kind"]]
    s = DDPMScheduler(num_train_timesteps=case["T"], beta_start=k * case["beta_start"],
                      beta_end=k * case["beta_end"], beta_schedule=kind)
    return s.betas.double().numpy()[np.asarray(case["i"])]


def timesteps_with(cls):
    def impl(case):
        s = cls(num_train_timesteps=case["T"], timestep_spacing=case["spacing"], steps_offset=case["steps_offset"])
        s.set_timesteps(case["n"])
        ts = [int(t) for t in s.timesteps]
        prev = [int(s.previous_timestep(t)) if hasattr(s, "previous_timestep")
                else max(t - case["T"] // case["n"], -1) for t in ts]  # DDIM: ᾱ_prev = 1 below 0
        return np.stack([ts, prev], 1)[np.asarray(case["i"])].astype(float)
    return impl


def ddpm_log_variance(case):
    """Both columns through DDPMScheduler._get_variance: fixed_small_log gives the std, exp(½ log β̃)."""
    s = ddpm(case["betas"])
    rows = []
    for t in case["t"]:
        small = 2 * torch.log(s._get_variance(int(t), variance_type="fixed_small_log"))
        rows.append([float(small), float(s._get_variance(int(t), variance_type="fixed_large_log"))])
    return np.array(rows)


def ddpm_step(variance_type=None, clip_sample=False):
    """DDPMScheduler.step on x_t with ε̂; variance_type None: fixed_small/fixed_large as the case asks."""
    def one(case):
        vt = variance_type or {"small": "fixed_small", "large": "fixed_large"}[case["variance"]]
        config = {} if clip_sample is None else {"clip_sample": clip_sample}
        s = ddpm(case["betas"], variance_type=vt, **config)
        with patched("scheduling_ddpm", case["z"]):
            return s.step(tensor(case["eps_pred"]), int(case["t"]), tensor(case["x"])).prev_sample
    return one_at_a_time(one)


# ---- DDIMScheduler -------------------------------------------------------------------------------
def ddim_step(clip_sample=False):
    """DDIMScheduler.step from t to t_prev: num_inference_steps = T/(t − t_prev) (a Fraction, so that
    diffusers' t − T // n is exactly t_prev), the case's z as variance_noise."""
    def one(case):
        config = {} if clip_sample is None else {"clip_sample": clip_sample}
        s = DDIMScheduler(num_train_timesteps=len(case["betas"]), trained_betas=np.asarray(case["betas"]),
                          prediction_type=case["prediction_type"], **config)
        t, t_prev = int(case["t"]), int(case["t_prev"])
        s.num_inference_steps = Fraction(len(case["betas"]), t - t_prev)
        return s.step(tensor(case["model_output"]), t, tensor(case["x"]), eta=case["eta"],
                      variance_noise=tensor(case["z"])).prev_sample
    return one_at_a_time(one)


# ---- Euler schedulers ----------------------------------------------------------------------------
def ancestral_sigmas(case):
    """σ_down and σ_up read off EulerAncestralDiscreteScheduler.step (ε-prediction, σ list [σ_from, σ_to]):
    x' = x + ε̂(σ_down − σ_from) + σ_up z, so (x, ε̂, z) = (σ_from, 1, 0) gives σ_down, (0, 0, 1) σ_up."""
    out = []
    for sf, st in zip(case["sigma_from"], case["sigma_to"]):
        s = EulerAncestralDiscreteScheduler()
        row = []
        for x, eps, z in ((sf, 1.0, 0.0), (0.0, 0.0, 1.0)):
            s.sigmas, s._step_index = tensor([sf, st]), 0
            with patched("scheduling_euler_ancestral_discrete", [[z]]):
                row.append(float(s.step(tensor([[eps]]), s.timesteps[0], tensor([[x]])).prev_sample))
        out.append(row)
    return np.array(out)


def euler_step(cls, module, at_churned=True):
    """One Euler(-churn) step of EulerDiscreteScheduler / EDMEulerScheduler from σ to σ_next with the
    case's γ (s_churn = γ·(len(sigmas) − 1), S_tmin = 0, S_tmax = ∞) and S_noise. ``at_churned``: the
    denoiser evaluated at (x̂, σ̂) of EDM's Alg. 2 (x̂ computed here as step() computes it), handed over
    as the x̂₀ prediction; otherwise where diffusers' pipelines evaluate it, on the sample handed to
    step(), at σ (EulerDiscreteScheduler, prediction_type='sample')."""
    def one(case):
        s = cls(prediction_type="sample") if cls is EulerDiscreteScheduler else cls()
        sigma, sigma_next, gamma = float(case["sigma"]), float(case["sigma_next"]), float(case["gamma"])
        s.sigmas, s._step_index = tensor([sigma, sigma_next]), 0
        n = int(np.prod(case["x"].shape[1:]))
        x, z = tensor(case["x"]).reshape(1, n), tensor(case["z"]).reshape(1, n)
        s_hat = sigma * (1 + gamma)
        x_hat = x + (s_hat ** 2 - sigma ** 2) ** 0.5 * case["S_noise"] * z
        D = ct.denoiser_fn(case["model"])(x_hat, s_hat) if at_churned else ct.denoiser_fn(case["model"])(x, sigma)
        extra = {"pred_original_sample": D} if cls is EDMEulerScheduler else {}
        with patched(module, z):
            prev = s.step(torch.zeros_like(x) if extra else D, s.timesteps[0], x, s_churn=gamma * (len(s.sigmas) - 1),
                          s_tmin=0.0, s_tmax=float("inf"), s_noise=case["S_noise"], **extra).prev_sample
        return prev.reshape(case["x"].shape)
    return one_at_a_time(one)


def edm_schedule(list_=False):
    """EDMEulerScheduler(sigma_min, sigma_max, rho).set_timesteps(N).sigmas (σ_N = 0 appended)."""
    def impl(case):
        s = EDMEulerScheduler(sigma_min=case["sigma_min"], sigma_max=case["sigma_max"], rho=case["rho"])
        s.set_timesteps(case["N"])
        sig = s.sigmas.double().numpy()
        return (sig if list_ else sig[:-1])[np.asarray(case["i"])]
    return impl


def edm_precond(case):
    """c_skip, c_out, c_in, c_noise from EDMEulerScheduler's precondition_* (prediction_type 'epsilon': EDM's F)."""
    s = EDMEulerScheduler(sigma_data=case["sigma_data"])
    rows = []
    for sigma in case["sigma"]:
        sg = tensor(sigma)
        c_in = float(s.precondition_inputs(tensor([1.0]), sg))
        c_skip = float(s.precondition_outputs(tensor([1.0]), tensor([0.0]), sg))
        c_out = float(s.precondition_outputs(tensor([0.0]), tensor([1.0]), sg))
        rows.append([c_skip, c_out, c_in, float(s.precondition_noise(sg))])
    return np.array(rows)


# ---- ScoreSdeVe / ScoreSdeVp ---------------------------------------------------------------------
def ve_sigma(sde, t):
    return sde["sigma_min"] * (sde["sigma_max"] / sde["sigma_min"]) ** t


def sde_ve_step_pred(case):
    """ScoreSdeVeScheduler.step_pred from t to t − dt: its σ grid set to [σ(t − dt), σ(t)]."""
    def one(c):
        s = ScoreSdeVeScheduler(sigma_min=c["sde"]["sigma_min"], sigma_max=c["sde"]["sigma_max"])
        s.set_timesteps(2)
        s.discrete_sigmas = tensor([ve_sigma(c["sde"], float(c["t"]) - c["dt"]), ve_sigma(c["sde"], float(c["t"]))])
        with patched("scheduling_sde_ve", c["z"]):
            return s.step_pred(tensor(c["score"]), 1.0, tensor(c["x"])).prev_sample
    return one_at_a_time(one)(case)


def sde_ve_final_denoise(case):
    """ScoreSdeVeScheduler.step_pred's prev_sample_mean at the last σ (its neighbour is 0)."""
    def one(c):
        s = ScoreSdeVeScheduler()
        s.set_timesteps(1)
        s.discrete_sigmas = tensor([float(c["sigma"])])
        with patched("scheduling_sde_ve", c["z"]):
            return s.step_pred(tensor(c["score"]), 0.0, tensor(c["x"])).prev_sample_mean
    return one_at_a_time(one)(case)


def sde_ve_step_correct(case):
    """ScoreSdeVeScheduler(snr).step_correct on the whole batch (its norms are batch means)."""
    s = ScoreSdeVeScheduler(snr=case["snr"])
    with patched("scheduling_sde_ve", case["z"]):
        return s.step_correct(tensor(case["score"]), tensor(case["x"])).prev_sample


def sde_vp_step_pred(case):
    """ScoreSdeVpScheduler.step_pred: its model output is ε̂ = −std(t)·score; dt = −1/num_inference_steps."""
    def one(c):
        s = ScoreSdeVpScheduler(beta_min=c["sde"]["beta_min"], beta_max=c["sde"]["beta_max"])
        s.set_timesteps(round(1 / c["dt"]))
        t = tensor([float(c["t"])])
        log_mean = -0.25 * t ** 2 * (c["sde"]["beta_max"] - c["sde"]["beta_min"]) - 0.5 * t * c["sde"]["beta_min"]
        std = torch.sqrt(1.0 - torch.exp(2.0 * log_mean))
        with mock.patch("diffusers.schedulers.deprecated.scheduling_sde_vp.randn_tensor", feeding(c["z"])):
            return s.step_pred(-std * tensor(c["score"]), tensor(c["x"]), t)[0]
    return one_at_a_time(one)(case)
