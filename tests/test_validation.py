"""Every validation rule of issue 2, with its message."""
import numpy as np
import pytest

from refscore.energies import Gaussian, GaussianMixture, MLPEnergy, SumOfEnergies, Banana
from refscore.partition import log_partition_quadrature

G = Gaussian([0.0, 0.0], np.eye(2))


@pytest.mark.parametrize("method", ["energy", "score", "unnormalized_log_prob", "log_prob"])
def test_1d_and_3d_x_are_errors_never_reshaped(method):
    f = getattr(G, method)
    with pytest.raises(ValueError, match=r"2-D array of shape \(n, d\).*got shape \(2,\).*reshape\(1, -1\)"):
        f(np.zeros(2))
    with pytest.raises(ValueError, match=r"got shape \(1, 1, 2\) \(3-D\)"):
        f(np.zeros((1, 1, 2)))


@pytest.mark.parametrize("bad,kind", [(np.nan, "NaN"), (np.inf, "inf")])
def test_non_finite_x(bad, kind):
    x = np.zeros((3, 2))
    x[1, 0] = bad
    with pytest.raises(ValueError, match=f"contains {kind}.*row 1"):
        G.score(x)


def test_dimension_mismatch():
    with pytest.raises(ValueError, match="d=3 columns but the model has dim=2"):
        G.energy(np.zeros((4, 3)))


def test_covariance_must_be_symmetric():
    with pytest.raises(ValueError, match="cov must be symmetric"):
        Gaussian([0, 0], [[1.0, 0.5], [0.0, 1.0]])


def test_covariance_must_be_positive_definite():
    with pytest.raises(ValueError, match="positive definite; its smallest eigenvalue is -1"):
        Gaussian([0, 0], [[1.0, 0.0], [0.0, -1.0]])
    with pytest.raises(ValueError, match=r"covs\[1\] must be positive definite"):
        GaussianMixture([0.5, 0.5], [[0.0], [1.0]], [[[1.0]], [[0.0]]])


def test_mixture_weights():
    with pytest.raises(ValueError, match="weights must be nonnegative"):
        GaussianMixture([1.5, -0.5], [[0.0], [1.0]], [1.0, 1.0])
    with pytest.raises(ValueError, match="weights must sum to 1, got sum 0.9"):
        GaussianMixture([0.5, 0.4], [[0.0], [1.0]], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"weights must have shape \(2,\)"):
        GaussianMixture([1.0], [[0.0], [1.0]], [1.0, 1.0])


def test_non_positive_sigma_and_beta():
    g = GaussianMixture([1.0], [[0.0]], [1.0])
    for s in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="sigma must be positive and finite"):
            g.perturbed(s)
        with pytest.raises(ValueError, match="sigma must be positive"):
            g.posterior_mean(np.zeros((1, 1)), s)
    for b in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="beta must"):
            g.diffused(b)


def test_parameters_with_nan_and_bad_shapes():
    with pytest.raises(ValueError, match="mean contains NaN"):
        Gaussian([np.nan, 0.0], np.eye(2))
    with pytest.raises(ValueError, match=r"cov must have shape \(2, 2\)"):
        Gaussian([0.0, 0.0], np.eye(3))
    with pytest.raises(ValueError, match="mean must be 1-D"):
        Gaussian([[0.0, 0.0]], np.eye(2))


def test_sum_of_energies_dims_and_mlp_args():
    with pytest.raises(ValueError, match="same dim"):
        SumOfEnergies([G, Gaussian([0.0], [[1.0]])])
    with pytest.raises(ValueError, match="needs rng"):
        MLPEnergy(2)
    with pytest.raises(ValueError, match="activation must be one of"):
        MLPEnergy(2, rng=np.random.default_rng(0), activation="relu")


def test_quadrature_arguments():
    with pytest.raises(ValueError, match="d <= 2 only"):
        log_partition_quadrature(Gaussian(np.zeros(3), np.eye(3)), [(-1, 1)] * 3)
    with pytest.raises(ValueError, match="low < high"):
        log_partition_quadrature(Banana(), [(1, -1), (0, 1)])


def test_sample_arguments():
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        G.sample(0, np.random.default_rng(0))
    with pytest.raises(TypeError, match="rng must be a numpy.random"):
        G.sample(3, 0)
