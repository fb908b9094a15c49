"""Per-row error control for the ODEs of bits/dim (issue 36, item 3): a row's answer does not depend
on which rows share its batch, and on one row the solver is SciPy's RK45."""
import autograd.numpy as anp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from refscore.models import ConvScoreNet
from refscore.sde import VPSDE, flow_bits_per_dim
from refscore.sde.rowwise import solve_rows

RATES = np.array([0.5, 3.0, 40.0, 7.0, 0.1])  # row 2 is stiff-ish: it needs many more steps than the others
Y0 = np.array([[1.0, 2.0], [0.5, -1.0], [2.0, 0.1], [-1.0, 1.0], [0.3, 0.3]])


def _f(t, y, rows):
    """Row i: dy/dt = -r_i (1 + sin t) y + cos 3t, each row at its own time."""
    return -RATES[rows, None] * y * (1 + np.sin(t)[:, None]) + np.cos(3 * t)[:, None]


@pytest.mark.parametrize("t1", [2.0, -1.5])
def test_each_row_is_scipys_rk45_of_that_row_alone(t1):
    y1, nfev, calls = solve_rows(_f, Y0, 0.0, t1, rtol=1e-6, atol=1e-8)
    for i, r in enumerate(RATES):
        sol = solve_ivp(lambda t, y: -r * y * (1 + np.sin(t)) + np.cos(3 * t), (0.0, t1), Y0[i], method="RK45",
                        rtol=1e-6, atol=1e-8)
        assert nfev[i] == sol.nfev  # the same steps, accepted and rejected
        # the same arithmetic up to the order of the sums: at most about one rounding per evaluation
        np.testing.assert_allclose(y1[i], sol.y[:, -1], rtol=sol.nfev * np.finfo(float).eps, atol=0)
    assert calls == nfev.max()  # rows that finish early leave the batch; the batch runs as long as its slowest row


def test_a_rows_answer_is_the_same_bits_in_any_company_and_order():
    y1, nfev, _ = solve_rows(_f, Y0, 0.0, 2.0)
    perm = np.array([3, 0, 4, 2, 1])
    yp, nfev_p, _ = solve_rows(lambda t, y, rows: _f(t, y, perm[rows]), Y0[perm], 0.0, 2.0)
    assert np.array_equal(yp, y1[perm]) and np.array_equal(nfev_p, nfev[perm])
    for rows in ([0], [1, 3], [0, 1, 3, 4]):  # without the stiff row 2, or alone
        sub = np.array(rows)
        ys, _, _ = solve_rows(lambda t, y, r: _f(t, y, sub[r]), Y0[sub], 0.0, 2.0)
        assert np.array_equal(ys, y1[sub])
    yt, _, _ = solve_rows(_f, Y0, 0.0, 2.0, threads=2)
    assert np.array_equal(yt, y1)


def test_one_ode_for_the_whole_batch_moves_a_row_with_its_company():
    """What per-row control removes: SciPy's joint error norm lets the stiff row set everyone's steps."""
    joint = lambda rows: solve_ivp(lambda t, y: _f(np.full(len(rows), t), y.reshape(len(rows), 2), rows).ravel(),
                                   (0.0, 2.0), Y0[rows].ravel(), rtol=1e-6, atol=1e-6).y[:, -1].reshape(len(rows), 2)
    assert not np.array_equal(joint(np.array([0, 1, 2, 3, 4]))[0], joint(np.array([0]))[0])


def _mixture_score(x, sigma):
    """Exact noise-conditional score of an equal mixture of N(±1, 0.2² I), perturbed at σ; rows apart."""
    s2 = (0.04 + anp.reshape(sigma, (-1, 1)) ** 2) if np.ndim(sigma) else 0.04 + sigma**2
    la, lb = -anp.sum((x - 1.0) ** 2, 1, keepdims=True) / (2 * s2), -anp.sum((x + 1.0) ** 2, 1, keepdims=True) / (2 * s2)
    w = 1.0 / (1.0 + anp.exp(lb - la))
    return (w * (1.0 - x) + (1.0 - w) * (-1.0 - x)) / s2


_mixture_score.per_example_sigma = True


@pytest.mark.parametrize("sde", [None, VPSDE.for_levels(4.0)], ids=["VE", "VP"])
def test_a_digits_bits_per_dim_does_not_depend_on_its_batch(sde):
    x = np.random.default_rng(0).uniform(size=(7, 3))
    kw = {"sde": sde, "t_min": 0.0, "t_max": 1.0} if sde is not None else {"sigma_min": 0.05, "sigma_max": 4.0}
    whole = flow_bits_per_dim(_mixture_score, x, **kw)["bpd"]
    perm = np.random.default_rng(1).permutation(7)
    assert np.array_equal(flow_bits_per_dim(_mixture_score, x[perm], **kw)["bpd"], whole[perm])
    assert np.array_equal(flow_bits_per_dim(_mixture_score, x[2:5], **kw)["bpd"], whole[2:5])
    assert np.array_equal(flow_bits_per_dim(_mixture_score, x, threads=3, **kw)["bpd"], whole)
    one_level = lambda y, s: _mixture_score(y, s)  # noqa: E731  no per_example_sigma: one call per row and time
    rows = flow_bits_per_dim(one_level, x, **kw)["bpd"]
    assert np.array_equal(flow_bits_per_dim(one_level, x[perm], **kw)["bpd"], rows[perm])


def test_hutchinson_rows_keep_their_probes_on_threads():
    x = np.random.default_rng(0).uniform(size=(6, 3))
    run = lambda threads: flow_bits_per_dim(_mixture_score, x, 0.05, 4.0, rng=np.random.default_rng(5),
                                            threads=threads)["bpd"]
    assert np.array_equal(run(1), run(2))


def test_a_u_net_digit_keeps_its_bits_per_dim_in_another_batch():
    net = ConvScoreNet(8, 4, rng=np.random.default_rng(0))
    x = np.random.default_rng(1).uniform(size=(4, 64))
    whole = flow_bits_per_dim(net.score_fn(), x, 0.05, 2.0, rtol=1e-4, atol=1e-4)
    alone = flow_bits_per_dim(net.score_fn(), x[[2]], 0.05, 2.0, rtol=1e-4, atol=1e-4)
    assert alone["bpd"][0] == whole["bpd"][2]


def test_a_non_finite_row_and_too_many_evaluations_are_named():
    bad = lambda t, y, rows: np.where(rows[:, None] == 3, np.nan, -y)  # noqa: E731
    with pytest.raises(ValueError, match="row 3"):
        solve_rows(bad, Y0, 0.0, 1.0)
    with pytest.raises(RuntimeError, match="max_evals=400.*row 2"):
        solve_rows(_f, Y0, 0.0, 2.0, max_evals=400)  # rows need 68, 158, 536, 248, 62
    with pytest.raises(ValueError, match=r"\(n, m\)"):
        solve_rows(_f, np.zeros(3), 0.0, 1.0)


def test_row_threads_give_the_batchs_rows_with_per_row_levels():
    from refscore import backends
    from refscore.training.shards import RowThreads

    x = np.random.default_rng(2).uniform(size=(9, 3))
    sig = np.linspace(0.1, 2.0, 9)
    with RowThreads(_mixture_score, backends.get("numpy"), threads=3) as f:
        assert f.per_example_sigma
        assert np.array_equal(f(x, sig), _mixture_score(x, sig))  # each block gets its own rows' levels
        assert np.array_equal(f(x, 0.7), _mixture_score(x, 0.7))
        assert np.array_equal(f(x[:1], 0.7), _mixture_score(x[:1], 0.7))
    with pytest.raises(ValueError, match="threads"):
        RowThreads(_mixture_score, backends.get("numpy"), threads=0)


def test_a_progress_bar_counts_the_rows_finished_on_every_thread(capsys):
    solve_rows(_f, Y0, 0.0, 2.0, threads=2, progress_bar=True, what="test ODE")
    err = capsys.readouterr().err
    assert "test ODE, rows done" in err and "100% (5/5)" in err
    solve_rows(_f, Y0, 0.0, 2.0)
    assert capsys.readouterr().err == ""
