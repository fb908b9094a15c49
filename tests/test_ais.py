"""Annealed importance sampling (Neal 2001) against exact log Z (issue 14).

Tolerances: K_SE standard errors, the SE being the one `ais` reports (delta method).
"""
import math

import numpy as np
import pytest

from refscore.energies import DoubleWell, Gaussian, SumOfEnergies
from refscore.partition import ais, log_partition_quadrature, sigmoid_betas

K_SE = 5.0


def test_ais_matches_quadrature_for_a_bimodal_energy_in_2d():
    energy = SumOfEnergies([DoubleWell(2), Gaussian([0.5, 0.3], [[1.5, 0.4], [0.4, 0.8]])])
    exact = log_partition_quadrature(energy, [(-6, 6), (-6, 6)])
    r = ais(energy, 400, 150, np.random.default_rng(0), base=(0.0, 1.5), mala_step_size=0.1)
    assert abs(r.log_z - exact) <= K_SE * r.stderr, (r.log_z, exact, r.stderr)
    assert r.samples.shape == (400, 2) and r.log_weights.shape == (400,)


def test_ais_matches_the_closed_form_of_a_gaussian_in_64d():
    rng = np.random.default_rng(1)
    d = 64
    A = rng.normal(size=(d, d))
    cov = 0.6 * np.eye(d) + 0.5 * A @ A.T / d  # eigenvalues in about [0.6, 2.4]
    g = Gaussian(0.5 * rng.normal(size=d), cov)
    r = ais(g, 300, 150, np.random.default_rng(2), base=(0.0, 1.2), mala_step_size=0.2)
    # log Z = d/2 log 2π + ½ log det Σ
    assert abs(r.log_z - g.log_partition()) <= K_SE * r.stderr, (r.log_z, g.log_partition(), r.stderr)
    assert r.stderr < 0.5  # an estimate that can tell models apart, not a vacuous interval


def test_ais_standard_error_is_calibrated():
    """Over independent runs, the spread of log Ẑ matches the reported SE: with m runs the
    sample sd has relative SE about 1/sqrt(2(m-1)), so the ratio sd/SE lies within K_SE of that."""
    energy = SumOfEnergies([DoubleWell(2), Gaussian([0.5, 0.3], [[1.5, 0.4], [0.4, 0.8]])])
    rng = np.random.default_rng(3)
    runs = [ais(energy, 100, 20, rng, base=(0.0, 1.5), mala_step_size=0.1) for _ in range(40)]
    est, se = np.array([r.log_z for r in runs]), np.array([r.stderr for r in runs])
    ratio = est.std(ddof=1) / math.sqrt(np.mean(se**2))
    assert abs(ratio - 1.0) <= K_SE / math.sqrt(2 * (len(runs) - 1)), ratio


def test_sigmoid_schedule_is_symmetric_and_increasing():
    b = sigmoid_betas(50)
    assert b[0] == 0.0 and b[-1] == 1.0 and np.all(np.diff(b) > 0)
    np.testing.assert_allclose(b + b[::-1], 1.0, rtol=0, atol=1e-14)  # sigmoid(-t) = 1 - sigmoid(t)


def test_ais_input_errors():
    g = Gaussian(np.zeros(2), np.eye(2))
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="betas must increase strictly from 0 to 1"):
        ais(g, 10, 5, rng, betas=[0.0, 0.5, 0.4, 1.0])
    with pytest.raises(ValueError, match="base std must be positive"):
        ais(g, 10, 5, rng, base=(0.0, -1.0))
    with pytest.raises(ValueError, match="n_chains must be an integer >= 1"):
        ais(g, 0, 5, rng)
    with pytest.raises(TypeError, match="rng must be"):
        ais(g, 10, 5, 0)
