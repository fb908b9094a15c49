r"""The pieces every sampler step is made of: the one Langevin move, the Langevin proposal's
density, the Metropolis–Hastings accept/reject, the state a Metropolis sampler carries and the
typed record its step returns (as blackjax's ``mala.py`` / ``proposal.py`` split them).

The Langevin step (API.md; seed 001_…, "Langevin (Monte Carlo) sampling"):

.. math:: x' = x + h\,s(x) + \sqrt{2h}\,z,\qquad z\sim\mathcal N(0,I)

NCSN (Song & Ermon 2019, Alg. 1) writes :math:`x+\tfrac{\alpha}{2}s+\sqrt\alpha z`: their
:math:`\alpha` is our :math:`2h`. :func:`langevin_move` is the only place a Langevin move is
written (in :mod:`refscore.diffusion.moves`, re-exported here): ULA, MALA's proposal, annealed
Langevin and the reverse-SDE corrector all call it.
"""
from __future__ import annotations

from typing import NamedTuple

import autograd.numpy as anp

from .. import backends
from .._validation import check_output
from ..diffusion.moves import langevin_move  # noqa: F401  (the one Langevin move, re-exported here)

__all__ = ["State", "StepResult", "langevin_move", "langevin_log_q", "mh_accept", "rows_finite", "select_rows",
           "unchecked", "score_of", "log_prob_of"]


class State(NamedTuple):
    """What a Metropolis sampler carries between steps, so nothing is recomputed."""

    position: object  # (n, d)
    log_prob: object  # (n,)  log p̃ at position (unnormalised is fine)
    score: object  # (n, d) or None (RWMH)


class StepResult(NamedTuple):
    """What one Metropolis–Hastings step returns (MALA, RWMH): unpacks as
    ``state, is_accepted, is_finite = mala_step(...)``."""

    state: State  # the chains after the step
    is_accepted: object  # (n,) bool, the proposal was accepted
    is_finite: object  # (n,) bool, the proposal (and its log-density, score) was finite


def langevin_log_q(*, to, given, score_given, h, noise_var=None):
    r"""Log-density (up to a constant) of the Langevin proposal: moving ``to`` :math:`y` from
    ``given`` :math:`x`, with :math:`s(x)` = ``score_given``:

    .. math:: \log q(y\mid x) = -\frac{\|y - x - h\,s(x)\|^2}{2\tau},\qquad \tau=2h
              \;\Rightarrow\; -\frac{\|y-x-h s(x)\|^2}{4h}

    Keyword-only, so that MALA's forward :math:`q(y\mid x)` and reverse :math:`q(x\mid y)` cannot be
    swapped by a positional slip (the blackjax #653 bug): the reverse density takes the score
    at the point it is conditioned on, :math:`y`.
    """
    tau = 2.0 * h if noise_var is None else noise_var
    y, x, score_x = to, given, score_given
    r = y - x - h * score_x
    return -anp.sum(r * r, axis=1) / (2.0 * tau)


def mh_accept(log_ratio, u, finite):
    r"""Accept where :math:`\log u < \log\alpha` and the proposal is finite (non-finite
    proposals are always rejected). ``log_ratio`` (n,), ``u`` uniform (n,), ``finite`` (n,) bool."""
    xp = backends.of(u).xp
    return finite & (xp.log(u) < xp.where(finite, log_ratio, -xp.inf))


def rows_finite(a):
    """(n, d) -> (n,) True where the whole row is finite."""
    xp = backends.of(a).xp
    return xp.all(xp.isfinite(a), axis=1)


def select_rows(mask, a, b):
    """Row-wise ``where``: rows of ``a`` where ``mask`` (n,), else rows of ``b``."""
    xp = backends.of(a, b).xp
    m = mask.reshape((-1,) + (1,) * (a.ndim - 1))
    return xp.where(m, a, b)


# ----- user callables -----------------------------------------------------------------------
def unchecked(fn):
    """The unvalidated twin of an :class:`~refscore.energies.Energy`'s validated bound method
    (``score``, ``energy``, ``unnormalized_log_prob``), else ``fn`` itself: a driver validated
    its points once, so the inner loop skips the per-call finiteness scan (a host sync on GPU)."""
    from ..energies import Energy

    owner, func = getattr(fn, "__self__", None), getattr(fn, "__func__", None)
    if not isinstance(owner, Energy):
        return fn
    if func is Energy.score:
        return owner.score_unchecked
    if func is Energy.energy:
        return owner.energy_unchecked
    if func is Energy.unnormalized_log_prob:
        return lambda x: -owner.energy_unchecked(x)
    return fn


def score_of(score_fn, x, *args, name="score_fn"):
    """``score_fn(x, *args)``, refused unless it has shape ``(n, d)`` (no silent broadcasting)."""
    return check_output(score_fn(x, *args), anp.shape(x), name)


def log_prob_of(log_prob_fn, x, name="log_prob_fn"):
    """``log_prob_fn(x)``, refused unless it has shape ``(n,)``."""
    return check_output(log_prob_fn(x), anp.shape(x)[:1], name)
