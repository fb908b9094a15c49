r"""Write every case to plain files (JSON + ``.npz``) that any framework can read, and read them back.

Layout of ``export(directory)``::

    directory/README.md          the fields, the equations, the tolerances
    directory/index.json         {"format": "refscore-conformance", "version": 1, "cases": [...]}
    directory/<name>.json        one case; arrays as {"dtype", "shape", "data" (row-major, flat)}
    directory/<name>.npz         the same arrays, keyed by their path ("x", "model.A", "model.weights.0")

JSON numbers are written with Python's shortest round-trip ``repr``, so a float64 survives the
trip exactly (:func:`load` returns arrays equal bit for bit).
"""
from __future__ import annotations

import json
import os

import numpy as onp

from .cases import cases as builtin_cases
from .verify import TOLERANCES

__all__ = ["export", "load", "README"]

FORMAT, VERSION = "refscore-conformance", 1

README = """# refscore conformance cases

Each case is one JSON file (and an `.npz` with the same arrays). Arrays are objects
`{"dtype": "float64", "shape": [...], "data": [...]}` with `data` flat in **row-major (C)
order** (Julia/Fortran users: reshape with the reversed shape and permute). Points are rows:
`x` has shape `(n, *shape)`; `d` is the product of `shape`; flatten `x` to `(n, d)` row-major.
Conventions: p(x) = exp(-E(x))/Z, score s(x) = -grad E(x), losses in the ½ convention.

Fields of every case: `name`, `objective`, `x`, `model`, `expected` (n,) — the per-example value
your implementation must return (refscore's, float64). Map objectives also have `expected_x`.

Models (`model.kind`):
- `quadratic`: `A` (d, d) symmetric, `b` (d,): E(x) = ½ xᵀAx − bᵀx, s(x) = −Ax + b.
- `mlp`: `weights` = [W1, c1, ..., WK, cK], `activation` = "softplus": h0 = x,
  h_k = softplus(h_{k−1} W_k + c_k) for k < K, E(x) = h_{K−1} W_K + c_K (width 1); W_k is (in, out).
- `gaussian_family`: `mean` (d,), `cov` (d, d), `parametrization`: "ve": s(x, σ) is the exact score
  of N(mean, cov + σ²I); "vp": s(x, β) that of N(√(1−β) mean, (1−β) cov + βI).
  Quadratic and mlp models ignore the noise level.

Per objective (extra fields; value i of `expected`):
- `esm`: `target` (a model: s*) — ½‖s(x) − s*(x)‖².
- `ism`: — ½‖s(x)‖² + tr ∇s(x).
- `ssm`: `v` (M, n, *shape), `variance_reduced`, `projection` (informative) —
  (1/M) Σ_m [v_mᵀ ∇s(x) v_m + ½(v_mᵀ s(x))²]; variance-reduced: ½‖s(x)‖² replaces ½(v_mᵀs)².
- `dsm`: `sigma`, `z` (n, *shape) — ½‖s(x̃) + z/σ‖², x̃ = x + σz (gaussian_family: s(·, σ)).
- `ncsn`: `sigmas` (L,), `z` (L, n, *shape), `weighting` ("sigma2": λ = σ², "none": λ = 1) —
  (1/L) Σ_l λ(σ_l) ½‖s(x + σ_l z_l, σ_l) + z_l/σ_l‖².
- `vp_denoising`: `beta`, `eps` (n, *shape) — ‖x′ + β s(x′, β) − √(1−β) x‖², x′ = √(1−β) x + √β ε
  (lecture eq. 11.16, no ½).
- `tweedie`: `sigma` — x̂ = x + σ² s(x, σ) (x holds the noisy y).
- `tweedie_vp`: `beta` — x̂ = (x + β s(x, β)) / √(1−β) (x holds the noisy y).
- `langevin_step`: `h`, `z` (n, *shape) — x′ = x + h s(x) + √(2h) z.
- `mala_log_ratio`: `y` (n, *shape), `h` — log p(y) − log p(x) + log q(x|y) − log q(y|x),
  log p = −E, log q(y|x) = −‖y − x − h s(x)‖² / (4h).
- `ncsn_sampled`: `sigmas` (L,), `level_index` (n,) integers (0-based: example i uses σ_k, k =
  level_index[i]), `z` (n, *shape), `weighting` — λ(σ_k) ½‖s(x + σ_k z, σ_k) + z/σ_k‖² (no 1/L).
For the map objectives `expected_x` (n, *shape) holds the mapped points (x̂, x′, a converted
prediction, a sampler step), and `expected` their squared norms ‖·‖² (flattened); compare either.

Diffusion objectives (`expected` is (n,) or, where noted, (n, k) with the columns listed; `t` (n,)
are times in [0, 1] or, for DDPM, 0-based integer steps into `betas`; an `sde` is
{"kind": "ve", "sigma_min", "sigma_max"} or {"kind": "vp"|"subvp", "beta_min", "beta_max"}):
- `sde_marginal`: `sde`, `t` — (n, 2): mean coefficient a(t), std s(t) of x_t = a x0 + s z;
  VE std = √(σ(t)² − σ_min²), sub-VP std = 1 − e^{−B(t)}.
- `ddpm_marginal`: `betas` (T,), `t`, `x` (x0), `eps` — √ᾱ_t x0 + √(1−ᾱ_t) ε (map).
- `ddpm_posterior`: `betas`, `t` (≥ 1) — (n, 3): √ᾱ_{t−1}β_t/(1−ᾱ_t), √α_t(1−ᾱ_{t−1})/(1−ᾱ_t), β̃_t.
- `ddpm_log_variance`: `betas`, `t` — (n, 2): log β̃ with β̃_0 clipped to β̃_1; log of [β̃_1, β_1, β_2…].
- `ddpm_ancestral_step`: `betas`, `t`, `x` (x_t), `eps_pred`, `z`, `variance` ("small" β̃ / "large" β) —
  (x_t − β_t/√(1−ᾱ_t) ε̂)/√α_t + σ_t z, no noise at t = 0 (map).
- `score_from_eps`: `x`, `eps`, `sigma` (n,) — −ε/σ (map). `x0_from_score`: `x`, `score`, `alpha`,
  `sigma` — (x + σ² s)/α (map). `v_target`: `x` (x0), `eps`, `alpha`, `sigma` — α ε − σ x0 (map).
- `edm_score`: `x`, `denoised`, `sigma` — (D − x)/σ² (map). `edm_to_d`: same fields — (x − D)/σ (map).
- `likelihood_weighting`: `sde`, `t` — g(t)². `edm_loss_weight`: `sigma`, `sigma_data` — (σ²+σ_d²)/(σσ_d)².
- `edm_precond`: `sigma`, `sigma_data` — (n, 4): c_skip, c_out, c_in, c_noise = ¼ ln σ.
- `edm_schedule`: `i` (n,), `N`, `sigma_min`, `sigma_max`, `rho` — σ_i of Karras et al. eq. 5.
- `ancestral_sigmas`: `sigma_from`, `sigma_to`, `eta` — (n, 2): σ_down, σ_up (k-diffusion).
- `reverse_sde_step`: `sde`, `t`, `dt`, `x`, `score`, `z` — x − [f − g²s]dt + g√dt z (map).
- `pf_ode_drift`: `sde`, `t`, `x`, `score` — f − ½g²s (map).
- `pc_corrector_step`: `x`, `score`, `z`, `snr`, `alpha` — ε = 2α(snr·mean‖z‖/mean‖s‖)²,
  x + ε s + √(2ε) z (map; the norms are batch means of per-example norms).
- `annealed_langevin_step`: `x`, `score`, `z`, `sigmas`, `level` (n,), `eps` — α = ε σ_k²/σ_L²,
  x + (α/2) s + √α z (map; the NCSN paper's convention).
- `final_denoise`: `x`, `score`, `z`, `sigma` — x + σ² s, no noise (map).
- `bits_per_dim`: `x` (for D only), `log_p` (n,), `scale` a — −log p/(D ln 2) + 8 − log₂ a.
- `pf_ode_log_likelihood`: `model` (gaussian_family mean, cov: the data law), `sde`, `t_min` ε, `x`,
  `v` (probes, for Hutchinson estimators) — log p_ε(x), exact (default tolerance rtol 1e-5, atol 1e-6).

Tolerance: |got − expected| ≤ rtol |expected| + atol · max(1, max |expected|), per example;
float64: rtol = @R64@, atol = @A64@; float32: rtol = @R32@, atol = @A32@.
"""


def _encode(value, path, arrays):
    if isinstance(value, onp.ndarray):
        arrays[path] = value
        return {"dtype": str(value.dtype), "shape": list(value.shape), "data": value.ravel().tolist()}
    if isinstance(value, dict):
        return {k: _encode(v, f"{path}.{k}" if path else k, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [_encode(v, f"{path}.{i}", arrays) for i, v in enumerate(value)]
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float, onp.floating, onp.integer)):
        return float(value) if isinstance(value, (float, onp.floating)) else int(value)
    raise TypeError(f"cannot export field {path!r} of type {type(value).__name__}")


def _decode(value, path, npz):
    if isinstance(value, dict) and set(value) == {"dtype", "shape", "data"}:
        if npz is not None:
            return onp.array(npz[path])
        return onp.asarray(value["data"], dtype=value["dtype"]).reshape(value["shape"])
    if isinstance(value, dict):
        return {k: _decode(v, f"{path}.{k}" if path else k, npz) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, f"{path}.{i}", npz) for i, v in enumerate(value)]
    return value


def export(directory, cases=None):
    r"""Write every case (default: all built-in cases) to ``directory`` as JSON + ``.npz``,
    with ``README.md`` describing the fields and ``index.json`` listing the cases.

    .. math:: \texttt{load}(\texttt{export}(c)) = c \quad\text{bit for bit (float64 repr round trip)}

    Returns the list of written paths.
    """
    os.makedirs(directory, exist_ok=True)
    chosen = builtin_cases() if cases is None else cases
    written, index = [], []
    for case in chosen:
        arrays = {}
        encoded = _encode(case, "", arrays)
        stem = os.path.join(directory, case["name"])
        with open(stem + ".json", "w") as f:
            json.dump(encoded, f)
        onp.savez(stem + ".npz", **arrays)
        written += [stem + ".json", stem + ".npz"]
        index.append({"name": case["name"], "objective": case["objective"],
                      "json": case["name"] + ".json", "npz": case["name"] + ".npz"})
    with open(os.path.join(directory, "index.json"), "w") as f:
        json.dump({"format": FORMAT, "version": VERSION, "cases": index}, f, indent=1)
    (r64, a64), (r32, a32) = TOLERANCES["float64"], TOLERANCES["float32"]
    with open(os.path.join(directory, "README.md"), "w") as f:
        f.write(README.replace("@R64@", f"{r64:g}").replace("@A64@", f"{a64:g}")
                .replace("@R32@", f"{r32:g}").replace("@A32@", f"{a32:g}"))
    return written + [os.path.join(directory, n) for n in ("index.json", "README.md")]


def load(directory, objective=None, arrays="json"):
    r"""Read the cases written by :func:`export` (needs only NumPy).

    .. math:: \texttt{load}(\texttt{export}(c)) = c

    Parameters
    ----------
    directory : the folder given to :func:`export`
    objective : keep only this objective's cases (default: all)
    arrays : "json" (default) to take the arrays from the JSON files, "npz" from the ``.npz`` files
    """
    if arrays not in ("json", "npz"):
        raise ValueError(f"arrays must be 'json' or 'npz', got {arrays!r}")
    path = os.path.join(directory, "index.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: is {directory!r} a folder written by export()?")
    with open(path) as f:
        index = json.load(f)
    if index.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} index (format {index.get('format')!r})")
    out = []
    for entry in index["cases"]:
        if objective is not None and entry["objective"] != objective:
            continue
        with open(os.path.join(directory, entry["json"])) as f:
            encoded = json.load(f)
        if arrays == "npz":
            with onp.load(os.path.join(directory, entry["npz"])) as npz:
                out.append(_decode(encoded, "", npz))
        else:
            out.append(_decode(encoded, "", None))
    return out
