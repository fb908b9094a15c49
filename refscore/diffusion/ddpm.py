r"""Discrete-time DDPM (Ho, Jain & Abbeel 2020): the noise schedule, the forward marginal, the
posterior of one step, its variances, and the ancestral sampling step.

Indices are 0-based: ``betas[t]`` is the paper's :math:`\beta_{t+1}`, and ``t = 0`` is the last
sampling step (the paper's t = 1). With :math:`\alpha_t=1-\beta_t`,
:math:`\bar\alpha_t=\prod_{s\le t}\alpha_s` and :math:`\bar\alpha_{-1}=1`:

.. math:: q(x_t\mid x_0)=\mathcal N(\sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t)I)\quad\text{(eq. 4)},\qquad
          q(x_{t-1}\mid x_t,x_0)=\mathcal N(\tilde\mu_t,\ \tilde\beta_t I)\quad\text{(eqs. 6–7)}

The diffusion part of the lecture order: seed ``003_…`` §11 is this process with one step
(eq. 11.5); :mod:`refscore.sde` is its continuous-time limit (Song et al. 2021, Appendix B).
"""
from __future__ import annotations

import numpy as onp
from autograd.tracer import getval

from .. import backends
from .parametrisation import per_example

__all__ = ["alphas_cumprod", "q_sample", "posterior_coefficients", "posterior_log_variance_clipped",
           "fixed_large_log_variance", "ancestral_step"]


def _betas(betas):
    b = onp.asarray(betas, dtype=float)
    if b.ndim != 1 or not onp.all((b > 0) & (b < 1)):
        raise ValueError(f"betas must be a 1-d array of numbers in (0, 1), got {betas!r}")
    return b


def _at(values, t):
    """``values[t]``: host schedule constants (T,) at the steps ``t`` (n,), on ``t``'s backend (host
    ``t``: NumPy; a device array of steps: the constants go to the device, no sync)."""
    tv = getval(t)
    if hasattr(tv, "shape") and not backends.of(tv).host_memory:
        return backends.of(tv).asarray(values)[tv]
    return values[onp.asarray(t, dtype=int)]


def _schedule(betas):
    """β, ᾱ and ᾱ_{t−1} (with ᾱ_{−1} = 1) for every step, on the host."""
    b = _betas(betas)
    ab = onp.cumprod(1.0 - b)
    return b, ab, onp.concatenate([[1.0], ab[:-1]])


def alphas_cumprod(betas):
    r""":math:`\bar\alpha_t=\prod_{s=0}^{t}(1-\beta_s)` for every t (Ho et al. 2020, §2, above eq. 4).

    .. math:: \bar\alpha_t = \prod_{s\le t}\alpha_s,\qquad \alpha_s = 1-\beta_s
    """
    return onp.cumprod(1.0 - _betas(betas))



def q_sample(x0, t, eps, betas):
    r"""A draw of :math:`x_t` from :math:`q(x_t\mid x_0)` with the given noise (Ho et al. 2020, eq. 4).

    .. math:: x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon

    ``x0``, ``eps``: (n, *shape); ``t``: (n,) integer steps (0-based).
    """
    ab = alphas_cumprod(betas)
    return per_example(_at(onp.sqrt(ab), t), x0) * x0 + per_example(_at(onp.sqrt(1.0 - ab), t), x0) * eps


def posterior_coefficients(betas, t):
    r"""The posterior :math:`q(x_{t-1}\mid x_t,x_0)` at steps ``t`` (n,): its mean coefficients and
    variance (Ho et al. 2020, eqs. 6–7).

    .. math:: \tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1-\bar\alpha_t}x_0
              + \frac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}x_t,\qquad
              \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t

    with :math:`\bar\alpha_{-1}=1` (so :math:`\tilde\beta_0=0`). Returns ``(coef_x0, coef_xt,
    variance)``, each (n,).
    """
    bt, abt, abp = _schedule(betas)  # every step, then the steps t
    coefs = onp.sqrt(abp) * bt / (1 - abt), onp.sqrt(1 - bt) * (1 - abp) / (1 - abt), bt * (1 - abp) / (1 - abt)
    return tuple(_at(c, t) for c in coefs)


def posterior_log_variance_clipped(betas, t):
    r""":math:`\log\tilde\beta_t` with the first entry clipped to :math:`\tilde\beta_1` (since
    :math:`\tilde\beta_0=0`), as DDPM's code stores it (Ho et al. 2020, ``diffusion_utils_2.py``,
    ``posterior_log_variance_clipped``).

    .. math:: \ell_t = \log\tilde\beta_{\max(t,1)}
    """
    return _at(_clipped_log_variance(betas), t)


def _clipped_log_variance(betas):
    """:math:`\\log\\tilde\\beta_t` for every step, the first entry replaced by the second."""
    b, ab, abp = _schedule(betas)
    var = b * (1 - abp) / (1 - ab)
    var[0] = var[1] if len(var) > 1 else var[0]  # β̃_0 = 0: clipped to β̃_1
    return onp.log(var)


def fixed_large_log_variance(betas, t):
    r"""The "fixed large" reverse-process log-variance :math:`\log\sigma_t^2`, :math:`\sigma_t^2=\beta_t`
    (Ho et al. 2020, §3.2), with its first entry set to :math:`\tilde\beta_1` for a better
    decoder likelihood (Nichol & Dhariwal 2021, ``gaussian_diffusion.py``, ``FIXED_LARGE``).

    .. math:: \ell_t = \log\big(\tilde\beta_1 \text{ if } t=0 \text{ else } \beta_t\big)
    """
    lv = onp.log(_betas(betas))
    lv[0] = _clipped_log_variance(betas)[0]
    return _at(lv, t)


def ancestral_step(x_t, t, eps_pred, z, betas, variance="small"):
    r"""One DDPM sampling step from :math:`x_t` with a noise prediction :math:`\hat\varepsilon` and
    explicit noise ``z`` (Ho et al. 2020, Algorithm 2):

    .. math:: x_{t-1} = \frac1{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}
              \hat\varepsilon\Big) + \sigma_t z,\qquad \sigma_t^2 = \tilde\beta_t\ (\text{"small"})
              \ \text{or}\ \beta_t\ (\text{"large"}),\quad z = 0 \text{ at } t = 0

    ``x_t``, ``eps_pred``, ``z``: (n, *shape); ``t``: (n,) 0-based steps.
    """
    if variance not in ("small", "large"):
        raise ValueError(f"variance must be 'small' (β̃) or 'large' (β), got {variance!r}")
    b, ab, abp = _schedule(betas)  # every step, then the steps t
    std = onp.sqrt(b * (1 - abp) / (1 - ab) if variance == "small" else b)
    std[0] = 0.0  # no noise at the last step
    mean = (x_t - per_example(_at(b / onp.sqrt(1 - ab), t), x_t) * eps_pred) / per_example(_at(onp.sqrt(1 - b), t), x_t)
    return mean + per_example(_at(std, t), x_t) * z
