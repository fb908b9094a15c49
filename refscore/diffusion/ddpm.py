r"""Discrete-time DDPM (Ho, Jain & Abbeel 2020): the noise schedule, the forward marginal, the
posterior of one step, its variances, and the ancestral sampling step.

Indices are 0-based: ``betas[t]`` is the paper's :math:`\beta_{t+1}`, and ``t = 0`` is the last
sampling step (the paper's t = 1). Steps must be integers in [0, T-1] (3.0 is 3; -1, 2.7 and T are
refused with the value, never wrapped or truncated); on a device they are not read (a host
synchronisation): there a step outside [0, T-1] gives NaN, never another step's value. With :math:`\alpha_t=1-\beta_t`,
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
from .._validation import check_choice, check_coefficient, check_examples, check_noise, check_steps
from .parametrisation import per_example

__all__ = ["alphas_cumprod", "q_sample", "posterior_coefficients", "posterior_log_variance_clipped",
           "fixed_large_log_variance", "ancestral_step"]


def _betas(betas):
    try:
        b = onp.asarray(betas, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"betas must be a 1-D sequence of numbers in (0, 1), got {betas!r}") from None
    if b.ndim != 1 or b.size == 0:
        raise ValueError(f"betas must be a non-empty 1-D sequence of numbers in (0, 1), got shape {b.shape}")
    return check_coefficient(b, "betas", high=1.0)


def _at(values, t):
    """``values[t]``: host schedule constants (T,) at the steps ``t`` (checked by :func:`check_steps`),
    on ``t``'s backend. A device array of steps is not read (no sync): the constants go to the device,
    and a step outside [0, T-1] gives NaN there (never another step's value, as CuPy's wrapping would)."""
    tv = getval(t)
    if hasattr(tv, "shape") and not backends.of(tv).host_memory:
        bk, last = backends.of(tv), len(values) - 1
        inside = (tv >= 0) & (tv <= last)
        return bk.xp.where(inside, bk.asarray(values)[bk.xp.clip(tv, 0, last)], bk.xp.nan)
    return values[tv]


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

    ``x0``, ``eps``: (n, *shape); ``t``: (n,) integer steps (0-based) in [0, T-1].
    """
    ab = alphas_cumprod(betas)
    x0 = check_examples(x0, "x0")
    eps, t = check_noise(eps, getval(x0).shape, "eps"), check_steps(t, len(ab), "t", getval(x0).shape[0])
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
    t = check_steps(t, len(bt), "t")
    coefs = onp.sqrt(abp) * bt / (1 - abt), onp.sqrt(1 - bt) * (1 - abp) / (1 - abt), bt * (1 - abp) / (1 - abt)
    return tuple(_at(c, t) for c in coefs)


def posterior_log_variance_clipped(betas, t):
    r""":math:`\log\tilde\beta_t` with the first entry clipped to :math:`\tilde\beta_1` (since
    :math:`\tilde\beta_0=0`), as DDPM's code stores it (Ho et al. 2020, ``diffusion_utils_2.py``,
    ``posterior_log_variance_clipped``).

    .. math:: \ell_t = \log\tilde\beta_{\max(t,1)}
    """
    lv = _clipped_log_variance(betas)
    return _at(lv, check_steps(t, len(lv), "t"))


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
    return _at(lv, check_steps(t, len(lv), "t"))


def ancestral_step(x_t, t, eps_pred, z, betas, variance="small"):
    r"""One DDPM sampling step from :math:`x_t` with a noise prediction :math:`\hat\varepsilon` and
    explicit noise ``z`` (Ho et al. 2020, Algorithm 2):

    .. math:: x_{t-1} = \frac1{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}
              \hat\varepsilon\Big) + \sigma_t z,\qquad \sigma_t^2 = \tilde\beta_t\ (\text{"small"})
              \ \text{or}\ \beta_t\ (\text{"large"}),\quad z = 0 \text{ at } t = 0

    ``x_t``, ``eps_pred``, ``z``: (n, *shape); ``t``: (n,) 0-based steps.
    """
    check_choice(variance, "variance", ("small", "large"))  # β̃ or β
    b, ab, abp = _schedule(betas)  # every step, then the steps t
    x_t = check_examples(x_t, "x_t")
    eps_pred = check_examples(eps_pred, "eps_pred", like=x_t, like_name="x_t")
    z, t = check_noise(z, getval(x_t).shape, "z"), check_steps(t, len(b), "t", getval(x_t).shape[0])
    std = onp.sqrt(b * (1 - abp) / (1 - ab) if variance == "small" else b)
    std[0] = 0.0  # no noise at the last step
    mean = (x_t - per_example(_at(b / onp.sqrt(1 - ab), t), x_t) * eps_pred) / per_example(_at(onp.sqrt(1 - b), t), x_t)
    return mean + per_example(_at(std, t), x_t) * z
