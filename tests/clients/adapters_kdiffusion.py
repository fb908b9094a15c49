"""Adapters from refscore's conformance cases to k-diffusion 0.1.1.post1, written as its users
would: the functions called with the case's numbers, its denoiser wrappers around a tiny inner
model built from the case (a probe that returns what the case asks, or the case's exact Gaussian
denoiser), and its Rademacher probe fed from the case. k-diffusion is never a refscore dependency."""
from unittest import mock

import numpy as np
import torch
from k_diffusion import external, layers, sampling

from refscore.conformance import torch as ct

F64 = torch.float64


def tensor(a):
    return torch.as_tensor(np.asarray(a), dtype=F64)


def karras(list_=False):
    """get_sigmas_karras(n, σ_min, σ_max, ρ): N σ's then 0 (edm_schedule: the first N)."""
    def impl(case):
        sig = sampling.get_sigmas_karras(case["N"], case["sigma_min"], case["sigma_max"], rho=case["rho"],
                                         device="cpu").double().numpy()
        return (sig if list_ else sig[:-1])[np.asarray(case["i"])]
    return impl


def ancestral_step(case):
    return np.array([[float(v) for v in sampling.get_ancestral_step(tensor(sf), tensor(st), eta=case["eta"])]
                     for sf, st in zip(case["sigma_from"], case["sigma_to"])])


def to_d(case):
    shape = (-1,) + (1,) * (case["x"].ndim - 1)
    return sampling.to_d(tensor(case["x"]), tensor(case["sigma"]).reshape(shape), tensor(case["denoised"]))


class Probe(torch.nn.Module):
    """A tiny inner model: records what the wrapper hands it and returns a constant."""

    def __init__(self, value):
        super().__init__()
        self.value, self.seen = value, []

    def forward(self, x, sigma, **kwargs):
        self.seen.append((x, sigma))
        return torch.full_like(x, self.value)


def denoiser_precond(case):
    """c_skip, c_out, c_in and what k-diffusion's Denoiser hands its inner model as the noise input,
    probed: D(1, σ) with F = 0 is c_skip; D(0, σ) with F = 1 is c_out; the input seen is c_in·x."""
    rows = []
    for sigma in case["sigma"]:
        s = tensor([sigma])
        zero, one = Probe(0.0), Probe(1.0)
        c_skip = float(layers.Denoiser(zero, sigma_data=case["sigma_data"])(tensor([1.0]), s))
        c_out = float(layers.Denoiser(one, sigma_data=case["sigma_data"])(tensor([0.0]), s))
        c_in, noise_input = (float(v) for v in zero.seen[0])
        rows.append([c_skip, c_out, c_in, noise_input])
    return np.array(rows)


def vdenoiser_x0(case):
    """x̂0 = α x_t − σ_vp v through VDenoiser (σ_data = 1): the VP point x_t is the VE point x_t/α at
    σ = σ_vp/α, and the inner model (the probe of the case's v) answers v."""
    n = len(case["x"])
    shape = (n,) + (1,) * (case["x"].ndim - 1)
    alpha, sigma_vp = tensor(case["alpha"]), tensor(case["sigma"])

    class V(torch.nn.Module):
        def forward(self, x, sigma):
            return tensor(case["v"])
    out = external.VDenoiser(V())(tensor(case["x"]) / alpha.reshape(shape), sigma_vp / alpha)
    return out


def discrete_eps_score(case):
    """−ε̂/√(1 − ᾱ_t) through DiscreteEpsDDPMDenoiser(ᾱ, quantize=True): the inner model answers the
    case's ε̂ at the t it is handed; x_t is the VE point x_t/√ᾱ_t at σ_t = t_to_sigma(t), and the
    score of x_t is (D − x)/σ² divided by √ᾱ_t."""
    alphas_cumprod = torch.cumprod(1 - tensor(case["betas"]), 0)
    t = torch.as_tensor(case["t"])
    shape = (-1,) + (1,) * (case["x"].ndim - 1)
    seen = []

    class Eps(torch.nn.Module):
        def forward(self, x, t_in):
            seen.append(t_in)
            return tensor(case["eps"])
    model = external.DiscreteEpsDDPMDenoiser(Eps(), alphas_cumprod, quantize=True)
    sigma = model.t_to_sigma(t).to(F64)
    root = alphas_cumprod[t].sqrt().reshape(shape)
    x = tensor(case["x"]) / root
    D = model(x, sigma)
    assert torch.equal(seen[0].long(), t), f"the inner model got t = {seen[0]}, the case's t = {t}"
    return (D - x) / sigma.reshape(shape) ** 2 / root


def log_likelihood(case):
    """k_diffusion.sampling.log_likelihood(D, x, σ_min, σ_max) of the case's Gaussian data (VE): its
    levels are the noise added since t = 0, √(σ(t)² − σ_min²), D the case's exact denoiser, and its
    Rademacher probe is the case's v (randint_like fed (v + 1)/2)."""
    sde, n = case["sde"], len(case["x"])

    def level(t):
        return (sde["sigma_min"] ** 2 * ((sde["sigma_max"] / sde["sigma_min"]) ** (2 * t) - 1)) ** 0.5
    denoise = ct.denoiser_fn(case["model"])

    def model(x, sigma):
        return denoise(x.reshape(n, -1), sigma).reshape(x.shape)
    v = (tensor(case["v"]) + 1) / 2
    with mock.patch("k_diffusion.sampling.torch.randint_like", lambda x, k: v):
        ll, _ = sampling.log_likelihood(model, tensor(case["x"]), level(case["t_min"]), level(1.0),
                                        atol=1e-10, rtol=1e-10)
    return ll
