r"""Conformance: check another implementation of score matching against refscore.

Deterministic cases (plain NumPy arrays, exportable to JSON + ``.npz`` for any framework) for the
score-matching objectives and the diffusion half (schedules, parametrisations, sampler steps,
likelihoods), a verifier that names the known fault behind a failure, statistical checks for
samplers, and helpers for a user's own pytest suite. Each objective is one record
(:class:`Objective`: cases, reference, fields, equation, faults) in :data:`REGISTRY`.
API.md, "Conformance"; docs chapter ``docs/conformance.md`` ("Check your implementation").

.. math:: \texttt{expected}_i = \ell(x_i) \text{ computed by refscore (float64)};\quad
          \text{an implementation passes when } |g_i-\texttt{expected}_i| \le \text{tol}_i\ \forall i
"""
from .cases import OBJECTIVES, cases
from .export import export, load
from .faults import FAULTS, Fault, faults_for
from .objective import Objective
from .registry import COLUMNS, REGISTRY
from .sampler_faults import SAMPLER_FAULTS
from .sampler_replay import check_sampler_step
from .statistical import ExactnessReport, SamplerReport, check_sampler, check_sampler_exactness, mala_acceptance_gaussian
from .testing import assert_case, one_at_a_time, pytest_params
from .verify import TOLERANCES, Report, Row, diagnose, verify

__all__ = ["OBJECTIVES", "COLUMNS", "cases", "verify", "export", "load", "Report", "Row", "TOLERANCES",
           "diagnose", "Fault", "FAULTS", "faults_for", "Objective", "REGISTRY", "check_sampler", "SamplerReport",
           "check_sampler_exactness", "ExactnessReport", "check_sampler_step", "SAMPLER_FAULTS",
           "mala_acceptance_gaussian", "pytest_params", "assert_case", "one_at_a_time"]
