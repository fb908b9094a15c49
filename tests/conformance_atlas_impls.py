"""Independent NumPy implementations of the schedule, DDIM, Min-SNR, v and EDM-sampling objectives,
written from the papers as a user would, each known fault a switch ``f`` (the fault's name; None:
the right code). ``tests/test_conformance_diffusion.py`` adds them to its table ``T_DIFF``."""
import math

import numpy as np


def col(a, x):
    return np.reshape(a, (-1,) + (1,) * (np.ndim(x) - 1))


def alphas_bar(betas):
    return np.cumprod(1 - np.asarray(betas))


# ---- schedules: Ho et al. 2020 §4; Nichol & Dhariwal 2021 eq. 17; Lin et al. 2024 Table 2 -------------
def t_beta_schedule(c, f):
    T, kind = c["T"], c["kind"]
    if kind == "cosine":
        s = 0.0 if f == "cosine without the offset s" else 0.008
        abar = [math.cos((i / T + s) / (1 + s) * math.pi / 2) ** 2 for i in range(T + 1)]
        betas = np.array([1 - abar[i + 1] / abar[i] for i in range(T)])
        return betas if f == "cosine without the 0.999 clip" else np.minimum(betas, 0.999)
    scale = 1000 / T if (c["scale_1000_over_T"] and f != "1000/T scaling dropped") else 1.0
    lo, hi = scale * c["beta_start"], scale * c["beta_end"]
    squared = kind == "scaled_linear" and f != "linear for scaled-linear"
    if squared:
        lo, hi = math.sqrt(lo), math.sqrt(hi)
    frac = [(i + 1) / T if f == "linspace(b0, b1, T+1)[1:]" else i / (T - 1) for i in range(T)]
    ramp = np.array([lo + q * (hi - lo) for q in frac])
    return ramp**2 if squared else ramp


def t_timesteps(c, f):
    T, n, spacing = c["T"], c["n"], c["spacing"]
    if spacing == "trailing" and f == "leading for trailing":
        spacing = "leading"
    if spacing == "leading":
        offset = 0 if f == "steps_offset ignored" else c["steps_offset"]
        ts = [(T // n) * (n - 1 - j) + offset for j in range(n)]
    elif spacing == "trailing":
        ts = [round(T - j * (T / n)) - (0 if f == "trailing without the − 1" else 1) for j in range(n)]
    else:
        exact = [(T - 1) * (n - 1 - j) / (n - 1) for j in range(n)]
        ts = [math.floor(v) if f == "linspace floored" else round(v) for v in exact]
    if f == "prev_t = t − T//n":
        prev = [max(t - T // n, -1) for t in ts]
    else:
        prev = ts[1:] + [-1]
    return np.array([ts, prev], dtype=float).T


def t_ddpm_score_from_eps(c, f):
    ab, t = alphas_bar(c["betas"]), c["t"]
    std = {"σ = √ᾱ_t": np.sqrt(ab[t]), "1 − ᾱ_t for √(1 − ᾱ_t)": 1 - ab[t],
           "√β_t for √(1 − ᾱ_t)": np.sqrt(c["betas"][t]),
           "abar[t−1] wrapped at t = 0": np.sqrt(1 - ab[t - 1])}.get(f, np.sqrt(1 - ab[t]))
    return -c["eps"] / col(std, c["x"])


def t_ddim(c, f):
    """Song, Meng & Ermon 2021, eq. 12 with σ of eq. 16; v: Salimans & Ho 2022, §4."""
    ab, x, out = alphas_bar(c["betas"]), c["x"], c["model_output"]
    final = ab[0] if f == "alphas_prev[0] = ᾱ₀ for 1" else 1.0
    a = ab[c["t"]]
    ap = np.array([ab[p] if p >= 0 else final for p in c["t_prev"]])
    kind = c["prediction_type"]
    if kind == "epsilon":
        eps = out
        x0 = (x - col(np.sqrt(1 - a), x) * eps) / col(np.sqrt(a), x)
    elif kind == "sample":
        x0 = out
        eps = out if f == "ε̂ never computed from x̂₀" else (x - col(np.sqrt(a), x) * x0) / col(np.sqrt(1 - a), x)
    else:
        sign = 1 if f == "x₀ from v with the wrong sign" else -1
        x0 = col(np.sqrt(a), x) * x + sign * col(np.sqrt(1 - a), x) * out
        eps = col(np.sqrt(a), x) * out + col(np.sqrt(1 - a), x) * x
    if f == "clip_sample (x̂₀ clipped to [−1, 1])":
        x0 = np.clip(x0, -1, 1)
    eta = c["eta"]
    var = (1 - ap) / (1 - a) * (1 - a / ap)
    sig2 = (eta if f == "η·var for η²·var" else eta**2) * var
    dir_var = 1 - ap if f == "direction without −σ²" else 1 - ap - sig2
    return col(np.sqrt(ap), x) * x0 + col(np.sqrt(dir_var), x) * eps + col(np.sqrt(sig2), x) * c["z"]


def t_min_snr(c, f):
    ab = alphas_bar(c["betas"])[c["t"]]
    snr = ab / (1 - ab)
    if f == "SNR as √ᾱ/√(1 − ᾱ)":
        snr = np.sqrt(ab) / np.sqrt(1 - ab)
    g = c["gamma"]
    lim = np.maximum(snr, g) if f == "max for min" else np.minimum(snr, g)
    kind = c["prediction_type"]
    if kind == "epsilon":
        return lim / snr
    if kind == "sample":
        return lim
    if f == "ε weight for v-prediction":
        return lim / snr
    if f == "1 added to the weight":
        return lim / snr + 1
    if f == "min(SNR + 1, γ)/(SNR + 1)":
        return np.minimum(snr + 1, g) / (snr + 1)
    return lim / (snr + 1)


def t_x0_from_v(c, f):
    x, v, a, s = c["x"], c["v"], col(c["alpha"], c["x"]), col(c["sigma"], c["x"])
    return {"wrong sign": a * x + s * v, "α and σ swapped": s * x - a * v, "ε̂ for x̂₀": s * x + a * v}.get(f, a * x - s * v)


# ---- EDM sampling: Karras et al. 2022, eq. 5, Table 1, Algorithm 2 -------------------------------------
def karras(i, n, lo, hi, rho):
    return (hi ** (1 / rho) + i / (n - 1) * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho


def t_sigma_list(c, f):
    n, lo, hi, rho = c["N"], c["sigma_min"], c["sigma_max"], c["rho"]
    if f == "N + 1 σ's from eq. 5":
        return np.array([karras(i, n + 1, lo, hi, rho) for i in range(n + 1)])
    sig = [karras(i, n, lo, hi, rho) for i in range(n)]
    return np.array(sig + [sig[-1] if f == "last σ repeated" else 0.0])


def t_vp_sigma(c, f):
    bd = 19.1 if f == "β_d = 19.1 for 19.9" else c["beta_d"]
    var = np.exp((1.0 if f == "½ dropped on β_d" else 0.5) * bd * c["t"] ** 2 + c["beta_min"] * c["t"]) - 1
    return var if f == "variance for std" else np.sqrt(var)


def t_training_sigma(c, f):
    m, s = (c["P_std"], c["P_mean"]) if f == "P_mean and P_std swapped" else (c["P_mean"], c["P_std"])
    return np.exp(m + (s**2 if f == "P_std² for P_std" else s) * c["normal"])


def t_churn(c, f):
    sig = c["sigma"]
    rate = c["S_churn"] if f == "S_churn not divided by N" else c["S_churn"] / c["N"]
    g = max(rate, math.sqrt(2) - 1) if f == "γ = max for min" else min(rate, math.sqrt(2) - 1)
    inside = np.ones(len(sig), bool) if f == "S_tmin/S_tmax ignored" else (sig >= c["S_tmin"]) & (sig <= c["S_tmax"])
    gamma = np.where(inside, g, 0.0)
    return np.stack([gamma, sig + gamma if f == "σ̂ = σ + γ" else sig + gamma * sig], 1)


def denoise(c, x, sigma):
    """The exact denoiser of N(μ, S) data: E[x0 | x] = x − σ²(S + σ²I)⁻¹(x − μ), one σ per row."""
    mu, S = np.asarray(c["model"]["mean"]), np.asarray(c["model"]["cov"])
    flat = x.reshape(len(x), -1)
    out = np.stack([r - s * s * np.linalg.solve(S + s * s * np.eye(len(mu)), r - mu) for r, s in zip(flat, sigma)])
    return out.reshape(x.shape)


def t_edm_step(c, f, heun=False):
    x, sig, nxt = c["x"], c["sigma"], c["sigma_next"]
    hat = sig * (1 + c["gamma"])
    add = hat - sig if f == "churn noise std σ̂ − σ" else np.sqrt(hat**2 - sig**2)
    xh = x + col(add * c["S_noise"], x) * c["z"]
    d = (xh - (denoise(c, x, sig) if f == "denoised before the churn" else denoise(c, xh, hat))) / col(hat, x)
    xe = xh + col(nxt - (sig if f == "step from σ, not σ̂" else hat), x) * d
    if not heun:
        return xe
    out = xe.copy()
    for i in range(len(x)):
        if nxt[i] == 0 and f != "correction at σ_next = 0":
            continue
        at = hat[i] if f == "second stage at σ̂" else nxt[i]
        with np.errstate(invalid="ignore", divide="ignore"):  # the fault's 0/0 at σ_next = 0
            d2 = (xe[i] - denoise(c, xe[i:i + 1], [at])[0]) / at
        slope = d2 if f == "second slope alone" else (d[i] + d2) / 2
        out[i] = xh[i] + (nxt[i] - hat[i]) * slope
    return out


T_ATLAS = {"beta_schedule": t_beta_schedule, "timesteps": t_timesteps, "ddpm_score_from_eps": t_ddpm_score_from_eps,
           "ddim_step": t_ddim, "min_snr_weight": t_min_snr, "x0_from_v": t_x0_from_v,
           "karras_sigma_list": t_sigma_list, "edm_vp_sigma": t_vp_sigma, "edm_training_sigma": t_training_sigma,
           "edm_churn": t_churn, "edm_euler_step": t_edm_step,
           "edm_heun_step": lambda c, f: t_edm_step(c, f, heun=True)}


# ---- respaced sampling: Nichol & Dhariwal 2021, §4 and eq. 15 -------------------------------------------
def respaced(c, f, unstrided):
    ab = alphas_bar(c["betas"])
    prev = [p if p >= 0 else None for p in ((c["t"] - 1) if unstrided else c["t_prev"])]
    a = ab[c["t"]]
    ap = np.array([1.0 if p is None else ab[p] for p in prev])
    return a, ap, 1 - a / ap


def t_strided_posterior(c, f):
    a, ap, beta = respaced(c, f, f == "posterior at t − 1")
    full = c["betas"][c["t"]]
    if f == "unstrided β_t":
        beta = full
    alpha = 1 - full if f == "unstrided α_t in the x_t coefficient" else 1 - beta
    return np.stack([np.sqrt(ap) * beta / (1 - a), np.sqrt(alpha) * (1 - ap) / (1 - a), (1 - ap) * beta / (1 - a)], 1)


def t_learned_range(c, f):
    a, ap, beta = respaced(c, f, f == "unstrided β")
    if f == "unstrided β":
        beta = c["betas"][c["t"]]
    tilde = beta * (1 - ap) / (1 - a)
    v = c["model_var_values"] if f == "output used as v unmapped" else (c["model_var_values"] + 1) / 2
    if f == "variances interpolated":
        return np.log(v * beta + (1 - v) * tilde)
    return v * np.log(beta) + (1 - v) * np.log(tilde)


T_ATLAS.update({"ddpm_strided_posterior": t_strided_posterior, "learned_range_variance": t_learned_range})
