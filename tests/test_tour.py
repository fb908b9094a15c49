"""The tour's pieces: plot helpers (drawn values against their closed forms), the section list,
the shared context, and the model-free digit quality measures. The quick tour itself runs once, in
``tests/test_train_and_cli.py::test_cli_tour_quick_writes_a_report``."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from refscore import backends, datasets  # noqa: E402
from refscore.apps import plots, tour  # noqa: E402
from refscore.apps.tour.context import TourContext  # noqa: E402
from refscore.apps.tour.images import nn_distance, digit_quality  # noqa: E402
from refscore.energies import Gaussian  # noqa: E402

NEEDS_SKLEARN = ('needs scikit-learn (the 8x8 digits ship with it; the judge is its classifier), which the [test] '
                 'extra does not install: pip install -e ".[data]"')


@pytest.fixture
def ax():
    fig, a = plt.subplots()
    yield a
    plt.close(fig)


def test_density_grid_is_the_shifted_density():
    g = Gaussian([0.5, -0.2], [[1.0, 0.3], [0.3, 0.5]])
    X, Y, P = plots.density_grid(g.log_prob, lim=2.0, m=41)
    pts = np.stack([X.ravel(), Y.ravel()], 1)
    p = np.exp(g.log_prob(pts)).reshape(X.shape)
    np.testing.assert_allclose(P, p / p.max(), rtol=1e-12)


def test_score_field_draws_s_over_root_norm(ax):
    g = Gaussian([0.0, 0.0], [[1.0, 0.0], [0.0, 4.0]])
    plots.score_field(ax, g.score, lim=2.0, m=5)
    q = ax.collections[-1]
    _, _, pts = plots.grid(2.0, 5)
    s = -pts / np.array([1.0, 4.0])  # closed-form score of N(0, diag(1, 4))
    expected = s / (np.linalg.norm(s, axis=1, keepdims=True) ** 0.5 + 1e-9)
    np.testing.assert_allclose(np.stack([q.U, q.V], 1), expected, rtol=1e-12)


def test_loss_panel_running_mean(ax):
    c = np.arange(10.0)
    plots.loss_panel(ax, c, "t", window=4)
    x, y = ax.lines[1].get_data()
    np.testing.assert_allclose(y, np.arange(7.0) + 1.5)  # mean of k..k+3
    np.testing.assert_array_equal(x, np.arange(7) + 2)


def test_image_grid_places_image_i_at_row_major_tile(ax):
    imgs = np.zeros((6, 4))
    for i in range(6):
        imgs[i, i % 4] = 0.1 * (i + 1)
    plots.image_grid(ax, imgs, side=2, ncols=4)
    canvas = np.asarray(ax.images[0].get_array())
    assert canvas.shape == (2 * 3 + 1, 4 * 3 + 1)
    for i in range(6):
        r, c = divmod(i, 4)
        tile = canvas[1 + 3 * r:3 + 3 * r, 1 + 3 * c:3 + 3 * c]
        np.testing.assert_allclose(tile.ravel(), imgs[i])


def test_sigma_ladder_has_one_panel_per_sigma_and_wider_laws_spread():
    ring = datasets.gaussian_mixture_law()
    fig = plots.sigma_ladder(lambda s: ring.perturbed(s).log_prob, [2.0, 0.5, 0.1], lim=3.0, m=40)
    assert [a.get_title() for a in fig.axes] == ["σ = 2", "σ = 0.5", "σ = 0.1"]
    plt.close(fig)
    # the drawn density at the origin (between the modes) falls as σ shrinks
    centre = [plots.density_grid(ring.perturbed(s).log_prob, 3.0, 41)[2][20, 20] for s in (2.0, 0.5, 0.1)]
    assert centre[0] > centre[1] > centre[2]


def test_ring_law_matches_the_data_set():
    law = datasets.gaussian_mixture_law()
    x = datasets.make("gaussian_mixture", 20000, np.random.default_rng(0))
    # E||x||² = r² + 2s² under the law; compare the sample mean within 5 SE
    r2 = (x**2).sum(1)
    expected = 2.0**2 + 2 * 0.15**2
    assert abs(r2.mean() - expected) < 5 * r2.std(ddof=1) / np.sqrt(r2.size)
    np.testing.assert_allclose(np.sort(np.linalg.norm(law.means, axis=1)), np.full(8, 2.0))


def test_sections_follow_the_lecture():
    names = [s.__name__ for s in tour.SECTIONS]
    assert names == ["ebm_section", "score_section", "objectives_section", "noise_scales_section",
                     "tweedie_section", "sampling_section", "questions_section", "diffusion_section",
                     "images_section"]


def test_context_rng_does_not_depend_on_order(tmp_path):
    ctx = TourContext(backends.get("numpy"), 0, True, None, str(tmp_path))
    a = ctx.rng("data").standard_normal(3)
    ctx.rng("other").standard_normal(5)
    np.testing.assert_array_equal(ctx.rng("data").standard_normal(3), a)
    calls = []
    assert ctx.once("x", lambda c: calls.append(1) or 7) == 7 == ctx.once("x", lambda c: calls.append(1) or 8)
    assert calls == [1]


def test_ema_decay_averages_over_a_tenth_of_the_run_at_most_a_thousand_steps():
    from refscore.apps.digits_common import ema_decay

    # an EMA of decay b weighs step t-k by (1-b) b^k: its mean window 1/(1-b) is n/10 steps, capped at 1000
    for n in (200, 1000, 7000, 10000, 50000):
        assert 1.0 / (1.0 - ema_decay(n)) == pytest.approx(min(n / 10, 1000), rel=1e-9)
    assert 0 < ema_decay(1) == ema_decay(20) < 1  # short runs: a window of two steps, still a decay in (0, 1)


def test_digit_quality_flags_copies_and_scores_real_digits():
    pytest.importorskip("sklearn", reason=NEEDS_SKLEARN)
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = d.data / 16.0, d.target
    xtr, ytr, xte = x[:1200], y[:1200], x[1200:]
    real = digit_quality(xte[:64], xtr, ytr, xte)
    nn_test = nn_distance(xte, xtr)
    assert real["copies"] == 0  # real held-out digits are not copies
    # 64 of the test digits are as far from the training set as all of them, within 5 SE
    assert abs(real["nn_samples"] - nn_test.mean()) <= 5 * nn_test.std(ddof=1) / np.sqrt(64)
    copied = digit_quality(xtr[:64], xtr, ytr, xte)
    assert copied["copies"] == 64 and copied["closest_sample"] == 0.0 and copied["nn_samples"] == 0.0
    noise = digit_quality(np.random.default_rng(0).uniform(0, 1, (64, 64)), xtr, ytr, xte)
    assert noise["nn_ratio"] > 2 and noise["confidence_samples"] < real["confidence_samples"]


@pytest.mark.slow
def test_digits_confidence_over_ten_sampling_seeds():
    """Issue 24: the classifier's mean confidence over 10 sampling seeds (one trained net, the
    full tour's sizes) reaches 0.85, by more than 2 standard errors of the mean over the seeds
    (so a mean that only touches the line by sampling luck fails)."""
    pytest.importorskip("sklearn", reason=NEEDS_SKLEARN)
    from refscore.apps.tour.images import TARGETS, digits_over_seeds

    r = digits_over_seeds(n_seeds=10, seed=0)
    assert len(r["confidences"]) == 10 and r["min"] <= r["mean"]
    assert r["mean"] - 2 * r["se"] >= TARGETS["confidence"], r
