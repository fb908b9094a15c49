import subprocess
import sys

import numpy as np
import pytest

from refscore import backends
from refscore.energies import Gaussian


def test_get_default_is_numpy(monkeypatch):
    monkeypatch.delenv("REFSCORE_BACKEND", raising=False)
    assert backends.get().name == "numpy"
    monkeypatch.setenv("REFSCORE_BACKEND", "strict")
    assert backends.get().name == "strict"


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown backend 'jax'.*numpy, cupy, strict"):
        backends.get("jax")


def test_available_lists_numpy_and_not_the_test_double():
    names = backends.available()
    assert names[0] == "numpy" and "strict" not in names


def test_conformance(bk):
    """The Backend contract, on every backend."""
    assert bk.name in backends.KNOWN
    a = bk.asarray([[1.0, 2.0], [3.0, 4.0]])
    assert isinstance(a, bk.array_type) and a.dtype == np.float64
    assert backends.of(a) is bk
    h = bk.to_numpy(a)
    assert isinstance(h, np.ndarray) and np.array_equal(h, [[1.0, 2.0], [3.0, 4.0]])
    assert bk.asarray(h, dtype="float32").dtype == np.float32
    r1, r2 = bk.rng(7), bk.rng(7)
    z1, z2 = bk.normal(r1, (3, 2)), bk.normal(r2, (3, 2))
    assert isinstance(z1, bk.array_type) and np.array_equal(bk.to_numpy(z1), bk.to_numpy(z2))
    assert bk.normal(bk.rng(0), (4,), "float32").dtype == np.float32
    s = bk.to_numpy(bk.rademacher(bk.rng(1), (1000,)))
    assert set(np.unique(s)) == {-1.0, 1.0} and abs(s.mean()) < 5 / np.sqrt(1000)
    u = bk.to_numpy(bk.uniform(bk.rng(2), (1000,)))
    assert u.min() >= 0 and u.max() < 1


def test_rng_of_another_backend_is_rejected(bk):
    other = backends.get("strict" if bk.name == "numpy" else "numpy")
    with pytest.raises(TypeError, match="rng must be a"):
        bk.normal(other.rng(0), (2, 2))


def test_mixing_backends_names_both():
    a = backends.get("numpy").asarray([[1.0]])
    b = backends.get("strict").asarray([[1.0]])
    with pytest.raises(TypeError, match="two backends.*numpy and strict"):
        backends.of(a, b)
    g = Gaussian([0.0], [[1.0]], backend="strict")
    with pytest.raises(TypeError, match="numpy and strict|strict and numpy"):
        g.energy(a)


def test_strict_refuses_numpy_conversion_and_mixing():
    s = backends.get("strict")
    a = s.asarray([[1.0, 2.0]])
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)
    with pytest.raises(TypeError, match="mixed with a StrictArray"):
        a + np.ones((1, 2))
    assert float((a * 2.0).sum()) == 6.0  # scalars are fine, as on CuPy


def test_cupy_missing_says_which_and_how(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "cupy" or name.startswith("cupy."):
            raise ImportError("No module named 'cupy'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    monkeypatch.delitem(backends._cache, "cupy", raising=False)
    with pytest.raises(ImportError, match=r'not installed.*pip install "refscore\[gpu\]"'):
        backends.get("cupy")


def test_backends_is_not_a_top_level_module_when_installed(tmp_path):
    """Build the wheel, install it into a fresh folder, import from elsewhere (issue 2)."""
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1]
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(wheels), str(root)], check=True, capture_output=True)
    whl = next(wheels.glob("refscore-*.whl"))
    import zipfile

    names = zipfile.ZipFile(whl).namelist()
    assert "refscore/backends/__init__.py" in names
    assert not any(n.startswith("backends/") for n in names)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                    str(whl)], check=True, capture_output=True)
    code = ("import refscore.backends as b; print(b.get('numpy').name)\n"
            "try:\n import backends\nexcept ImportError: print('no-top-level')\n")
    out = subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path[:0]=[{str(target)!r}] + "
                          f"[p for p in {sys.path!r} if 'site-packages' in p]\n" + code],
                         cwd=tmp_path, check=True, capture_output=True, text=True).stdout.split()
    assert out == ["numpy", "no-top-level"]
