"""refscore.plots: each helper draws what its formula says, on the Agg backend, and refuses
inputs it cannot draw with a message that names the argument."""
import subprocess
import sys

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from refscore import plots  # noqa: E402
from refscore.energies import Gaussian, GaussianMixture  # noqa: E402


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def test_grid_points_span_the_square_and_the_box():
    X, Y, pts = plots.grid_points(2.0, 5)
    assert X.shape == Y.shape == (5, 5) and pts.shape == (25, 2)
    assert pts.min(axis=0).tolist() == [-2.0, -2.0] and pts.max(axis=0).tolist() == [2.0, 2.0]
    _, _, box = plots.grid_points((0.0, 1.0, -3.0, 3.0), 4)
    assert box[:, 0].min() == 0.0 and box[:, 0].max() == 1.0 and box[:, 1].min() == -3.0
    np.testing.assert_allclose(np.diff(np.unique(box[:, 1])), 2.0)


def test_density_contours_draw_the_density_up_to_its_normaliser(ax):
    g = Gaussian([0.5, -0.5], np.diag([1.0, 0.5]))
    X, Y, V = plots.density_contours(ax, g.unnormalized_log_prob, lim=3.0, m=41)
    pts = np.c_[X.ravel(), Y.ravel()]
    exact = np.exp(g.log_prob(pts)).reshape(X.shape)
    # Z and the shift drop out: V is the density divided by its largest grid value
    np.testing.assert_allclose(V, exact / exact.max(), rtol=1e-12)
    assert V.max() == 1.0 and ax.collections, "nothing was drawn"
    _, _, L = plots.density_contours(ax, g.log_prob, lim=3.0, m=41, log=True, floor=-4.0)
    np.testing.assert_allclose(L, np.maximum(np.log(exact / exact.max()), -4.0), atol=1e-12)


def test_score_quiver_points_up_the_density_with_length_power(ax):
    g = Gaussian([0.0, 0.0], np.eye(2))  # s(x) = -x, |s| = |x|
    for power in (0.0, 0.5, 1.0):
        q = plots.score_quiver(ax, g.score, lim=2.0, m=5, power=power)
        _, _, pts = plots.grid_points(2.0, 5)
        arrows = np.c_[q.U, q.V]
        r = np.linalg.norm(pts, axis=1)
        far = r > 0
        np.testing.assert_allclose(np.linalg.norm(arrows[far], axis=1), r[far] ** power, rtol=1e-12)
        # the same direction as -x (towards the mode)
        cos = np.sum(arrows[far] * -pts[far], axis=1) / (np.linalg.norm(arrows[far], axis=1) * r[far])
        np.testing.assert_allclose(cos, 1.0, rtol=1e-12)
        assert np.all(arrows[~far] == 0.0), "the score is zero at the mode: no arrow"


def test_samples_over_density_puts_the_dots_where_the_points_are(ax):
    gmm = GaussianMixture([0.3, 0.7], [[-1.5, 0.0], [1.5, 0.5]], [0.5, 0.8])
    x = gmm.sample(50, np.random.default_rng(0))
    dots = plots.samples_over_density(ax, x, gmm.log_prob, label="samples")
    np.testing.assert_array_equal(dots.get_offsets(), x)
    lim = 1.1 * np.abs(x).max()
    assert ax.get_xlim() == pytest.approx((-lim, lim)) and ax.get_ylim() == pytest.approx((-lim, lim))
    assert len(ax.collections) >= 2, "the density's contours are missing under the dots"


def test_chain_strip_places_each_image_in_its_tile(ax):
    rng = np.random.default_rng(1)
    rows = [rng.uniform(0, 1, (3, 16)), rng.uniform(-0.5, 1.5, (3, 16))]  # second row leaves [0, 1]
    canvas = plots.chain_strip(ax, rows, labels=["a", "b", "c"], row_labels=["x_t", "x0_hat"])
    assert canvas.shape == (2 * 5 + 1, 3 * 5 + 1)
    for r in range(2):
        for j in range(3):
            tile = canvas[1 + 5 * r:5 * r + 5, 1 + 5 * j:5 * j + 5]
            np.testing.assert_array_equal(tile, np.clip(rows[r][j].reshape(4, 4), 0.0, 1.0))
    assert np.all(canvas[0, :] == 0.0) and np.all(canvas[:, 5] == 0.0), "tiles are separated by white"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["x_t", "x0_hat"]
    one = plots.chain_strip(ax, rows[0])  # one (k, d) array is one row
    assert one.shape == (6, 16)


def test_plots_take_backend_arrays(ax):
    from refscore import backends

    strict = backends.get("strict")  # a CPU stand-in for a device backend: no implicit host copies
    x = strict.asarray(np.array([[0.0, 1.0], [1.0, 0.0]]))
    dots = plots.samples_over_density(ax, x)
    np.testing.assert_array_equal(dots.get_offsets(), [[0.0, 1.0], [1.0, 0.0]])


@pytest.mark.parametrize("call, message", [
    (lambda ax: plots.samples_over_density(ax, np.zeros((4, 3))), "points must be a non-empty \\(n, 2\\)"),
    (lambda ax: plots.samples_over_density(ax, np.array([[0.0, np.nan]])), "points has NaN"),
    (lambda ax: plots.score_quiver(ax, lambda x: x[:, 0]), "score_fn must map"),
    (lambda ax: plots.score_quiver(ax, lambda x: -x, power=2.0), "power must lie in \\[0, 1\\]"),
    (lambda ax: plots.density_contours(ax, lambda x: x), "log_prob_fn must map"),
    (lambda ax: plots.grid_points((1.0, 0.0, 0.0, 1.0)), "lim must be a half-width"),
    (lambda ax: plots.chain_strip(ax, np.zeros((3, 15))), "d = 15 pixels"),
    (lambda ax: plots.chain_strip(ax, [np.zeros((3, 16)), np.zeros((2, 16))]), "one shape"),
    (lambda ax: plots.chain_strip(ax, np.zeros((3, 16)), labels=["a"]), "one label per column \\(3\\)"),
])
def test_bad_inputs_are_named(ax, call, message):
    with pytest.raises(ValueError, match=message):
        call(ax)


def test_importing_refscore_plots_does_not_import_pyplot():
    code = "import sys, refscore.plots; assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
