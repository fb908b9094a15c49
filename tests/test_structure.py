"""One way to do each thing (issue 19): the solvers are built on the SDE contract, a NumPy result
does not depend on which backend ran first, and what users subclass or unpack is public and typed.
(The import graph's rules are in ``tests/test_layout.py``.)"""
import pathlib
import re
import subprocess
import sys

import autograd.numpy as anp
import numpy as np
import pytest

from refscore import samplers, sde as sdelib
from refscore.energies import Energy

ROOT = pathlib.Path(__file__).resolve().parents[1]


# every deprecated compatibility path: (module, name, the new path its warning names); the only
# test that uses them (the rest of tests/ and docs/ import from the homes)
_COMPAT = [("refscore.nn", n, f"refscore.models.nn.{n}")
           for n in ("MLP", "NoiseConditionalScoreNet", "Saveable", "mlp_init", "mlp_apply")] + [
    ("refscore.nn", "ncsnv2_schedule", "refscore.models.schedules.ncsnv2_schedule"),
    ("refscore.nn", "NCSNv2Schedule", "refscore.models.schedules.NCSNv2Schedule"),
    ("refscore.nn", "MLPEnergy", "refscore.energies.MLPEnergy")] + [
    ("refscore.train", n, f"refscore.training.train.{n}") for n in ("adam", "sgd", "fit", "cd_loss", "fit_cd")] + [
    (m, n, f"refscore.training.fit_extras.{n}") for m in ("refscore.train", "refscore.training.train")
    for n in ("ema_update", "cosine_schedule")] + [
    (m, n, f"refscore.pytree.{n}") for m in ("refscore.train", "refscore.training.train")
    for n in ("tree_map", "tree_leaves")] + [
    ("refscore.training.shards", "UniqueTraceStack", "refscore.backends.autograd_patches.UniqueTraceStack"),
    ("refscore.training.shards", "thread_safe_traces", "refscore.backends.autograd_patches.install"),
    ("refscore.diffusion", "flow_bits_per_dim", "refscore.sde.flow_bits_per_dim"),
    ("refscore.apps.tour.artefacts", "ema_decay", "refscore.apps.digits_common.ema_decay"),
    ("refscore.apps.tour.context", "one_blas_thread", "refscore.apps.digits_common.one_blas_thread")]


@pytest.mark.parametrize("module, name, new", _COMPAT, ids=lambda v: str(v))
def test_compatibility_paths_warn_naming_the_new_path_and_serve_the_same_object(module, name, new):
    import importlib

    home, _, attr = new.rpartition(".")
    with pytest.warns(DeprecationWarning, match=re.escape(new)):
        old = getattr(importlib.import_module(module), name)
    assert old is getattr(importlib.import_module(home), attr)
    # the compatibility modules themselves, reached from the package, name their homes too
    if module in ("refscore.nn", "refscore.train"):
        import refscore

        short = module.split(".")[1]
        loaded = vars(refscore).pop(short, None)  # as before the first `import refscore.<short>`
        try:
            with pytest.warns(DeprecationWarning, match=f"{module} is deprecated: use refscore"):
                assert getattr(refscore, short) is importlib.import_module(module)
        finally:
            if loaded is not None:
                setattr(refscore, short, loaded)


def test_the_numpy_backend_does_not_import_the_device_stand_in():
    """Issue 31: the reference backend imported the strict CuPy stand-in (a test double) to move
    its arrays to the host; it now asks any device array for its explicit copy, a.get()."""
    import ast

    tree = ast.parse((ROOT / "backends" / "numpy_backend.py").read_text())
    imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any("strict" in m or "cupy" in m for m in imported), imported
    from refscore import backends
    from refscore.backends.strict_backend import count_syncs

    strict = backends.get("strict").asarray(np.arange(3.0))
    with count_syncs() as syncs:
        host = backends.get("numpy").asarray(strict)
    assert type(host) is np.ndarray and host.tolist() == [0.0, 1.0, 2.0] and syncs.syncs == 1


def test_an_uninstalled_checkout_says_how_to_install(tmp_path):
    """Issue 31: in a fresh checkout that is not installed, `import refscore` failed with a "circular
    import" error, because backends/ becomes refscore.backends only when installed. An interpreter
    without site-packages (-S: no editable install, no .pth) importing this source tree:"""
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); import refscore"
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 1 and "circular" not in out.stderr, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: refscore is not installed"), last
    assert "`make test`" in last and "`pip install -e .`" in last


# ----- the solvers are built on the SDE contract ------------------------------------------------
class Instrumented(sdelib.VPSDE):
    """A VP SDE that counts the calls of its reverse drift and probability-flow velocity."""

    def __init__(self):
        super().__init__()
        self.calls = {"reverse_drift": 0, "ode_drift": 0, "ode_drift_divergence": 0}

    def reverse_drift(self, score_fn, x, t):
        self.calls["reverse_drift"] += 1
        return super().reverse_drift(score_fn, x, t)

    def ode_drift(self, score_fn, x, t):
        self.calls["ode_drift"] += 1
        return super().ode_drift(score_fn, x, t)

    def ode_drift_divergence(self, score_trace, d, t):
        self.calls["ode_drift_divergence"] += 1
        return super().ode_drift_divergence(score_trace, d, t)


def _score(x, t):
    return -x  # the exact score of N(0, I), which the VP SDE keeps at every t


def test_reverse_sde_uses_the_sdes_reverse_drift_at_every_step():
    s = Instrumented()
    rng = np.random.default_rng(0)
    sdelib.reverse_sde_sample(s, _score, s.prior_sample(16, 2, rng), rng, n_steps=7)
    assert s.calls["reverse_drift"] == 7


def test_a_changed_reverse_drift_changes_the_samples():
    """A formula fixed in the SDE fixes the solver: a drift with the wrong factor on g² moves the result."""

    class Wrong(sdelib.VPSDE):
        def reverse_drift(self, score_fn, x, t):
            return self.drift(x, t) - 0.5 * self.diffusion(t) ** 2 * score_fn(x, t)

    x1 = sdelib.VPSDE().prior_sample(16, 2, np.random.default_rng(1))
    a = sdelib.reverse_sde_sample(sdelib.VPSDE(), _score, x1, np.random.default_rng(2), n_steps=5)
    b = sdelib.reverse_sde_sample(Wrong(), _score, x1, np.random.default_rng(2), n_steps=5)
    assert not np.allclose(a, b)


def test_probability_flow_and_likelihood_use_the_ode_drift():
    s = Instrumented()
    x = np.random.default_rng(3).standard_normal((4, 2))
    sdelib.probability_flow_sample(s, _score, x)
    assert s.calls["ode_drift"] > 0
    calls = dict(s.calls)
    logp = sdelib.log_likelihood(s, _score, x)
    assert s.calls["ode_drift"] > calls["ode_drift"] and s.calls["ode_drift_divergence"] > 0
    exact = -0.5 * (x**2).sum(axis=1) - np.log(2 * np.pi)  # N(0, I) in d = 2 stays N(0, I)
    np.testing.assert_allclose(logp, exact, atol=1e-4)


# ----- autograd's rules are installed once, at a fixed point ---------------------------------
_FLOAT32_GRAD = """
import numpy as np
from autograd import grad
from refscore import backends, losses
from refscore.energies import MLPEnergy
{before}
rng = np.random.default_rng(0)
m = MLPEnergy(3, (16,), rng=rng, dtype="float32")
x = rng.standard_normal((64, 3)).astype("float32")
g = grad(lambda p: losses.ssm(m.score_fn(p), x, np.random.default_rng(1), variance_reduced=True))(m.params)
print(g[0]["W"].dtype, g[0]["W"].tobytes().hex())
"""


def _run(before):
    out = subprocess.run([sys.executable, "-c", _FLOAT32_GRAD.format(before=before)], capture_output=True,
                         text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_numpy_results_are_bit_identical_before_and_after_the_strict_backend():
    used_strict = ("sb = backends.get('strict'); from autograd import grad as _g; import autograd.numpy as _a\n"
                   "_g(lambda v: _a.sum(_a.reshape(v, (-1,))[:2] ** 2))(sb.asarray(np.ones((2, 2))))")
    plain, after = _run(""), _run(used_strict)
    assert plain == after
    assert plain.startswith("float32 ")  # and the gradient stays float32 (the reduction rule's int count)


# ----- what users subclass or unpack is public and typed ------------------------------------
class Quartic(Energy):
    def __init__(self, dim):
        self.dim = dim

    def energy_unchecked(self, x):
        return anp.sum(x**4, axis=1) / 4


def test_an_energy_subclass_needs_only_dim_and_energy_unchecked():
    x = np.array([[1.0, -2.0], [0.5, 0.0]])
    q = Quartic(2)
    np.testing.assert_allclose(q.energy(x), (x**4).sum(axis=1) / 4)
    np.testing.assert_allclose(q.score(x), -(x**3))  # autograd of the energy
    np.testing.assert_allclose(q.unnormalized_log_prob(x), -q.energy(x))


def test_an_energy_subclass_returning_a_scalar_is_refused():
    class Summed(Quartic):
        def energy_unchecked(self, x):
            return anp.sum(x**4) / 4

    with pytest.raises(ValueError, match=r"energy_unchecked must return shape \(2,\), one energy per row"):
        Summed(2).energy(np.ones((2, 2)))


def test_an_energy_without_energy_unchecked_says_what_to_implement():
    class Empty(Energy):
        dim = 2

    with pytest.raises(NotImplementedError, match="must implement energy_unchecked"):
        Empty().energy(np.ones((1, 2)))


def test_step_functions_return_a_typed_record():
    g = sdelib.VPSDE()  # anything with a closed-form N(0, I) log-density
    x = np.random.default_rng(0).standard_normal((8, 2))
    lp = g.prior_log_prob
    st = samplers.mala_init(lp, x, lambda y: -y)
    out = samplers.mala_step(st, lp, lambda y: -y, 0.1, np.random.default_rng(1))
    assert isinstance(out, samplers.StepResult)
    assert out.state.position.shape == (8, 2) and out.is_accepted.shape == (8,) and out.is_finite.all()
    st2, acc, fin = samplers.rwmh_step(st, lp, 0.3, np.random.default_rng(2))  # still unpacks as three
    assert acc.dtype == bool


def test_the_proposal_density_cannot_be_called_positionally():
    x = np.zeros((1, 2))
    with pytest.raises(TypeError):
        samplers.langevin_log_q(x, x, x, 0.1)  # noqa: the swapped-argument bug needs positions
