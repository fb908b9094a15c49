r"""Write every case to plain files (JSON + ``.npz``) that any framework can read, and read them back.

Layout of ``export(directory)``::

    directory/README.md          the fields, the equations, the tolerances (from the objectives' records)
    directory/index.json         {"format": "refscore-conformance", "version": 1, "cases": [...]}
    directory/<name>.json        one case; arrays as {"dtype", "shape", "data" (row-major, flat)}
    directory/<name>.npz         the same arrays, keyed by their path ("x", "model.A", "model.weights.0")

JSON numbers are written with Python's shortest round-trip ``repr``, so a float64 survives the
trip exactly (:func:`load` returns arrays equal bit for bit).
"""
from __future__ import annotations

import json
import os

import numpy as onp

from .cases import cases as builtin_cases
from .verify import TOLERANCES

__all__ = ["export", "load"]

FORMAT, VERSION = "refscore-conformance", 1


def _encode(value, path, arrays):
    if isinstance(value, onp.ndarray):
        arrays[path] = value
        return {"dtype": str(value.dtype), "shape": list(value.shape), "data": value.ravel().tolist()}
    if isinstance(value, dict):
        return {k: _encode(v, f"{path}.{k}" if path else k, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [_encode(v, f"{path}.{i}", arrays) for i, v in enumerate(value)]
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float, onp.floating, onp.integer)):
        return float(value) if isinstance(value, (float, onp.floating)) else int(value)
    raise TypeError(f"cannot export field {path!r} of type {type(value).__name__}")


def _decode(value, path, npz):
    if isinstance(value, dict) and set(value) == {"dtype", "shape", "data"}:
        if npz is not None:
            return onp.array(npz[path])
        return onp.asarray(value["data"], dtype=value["dtype"]).reshape(value["shape"])
    if isinstance(value, dict):
        return {k: _decode(v, f"{path}.{k}" if path else k, npz) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, f"{path}.{i}", npz) for i, v in enumerate(value)]
    return value


def export(directory, cases=None):
    r"""Write every case (default: all built-in cases) to ``directory`` as JSON + ``.npz``,
    with ``README.md`` describing the fields and ``index.json`` listing the cases.

    .. math:: \texttt{load}(\texttt{export}(c)) = c \quad\text{bit for bit (float64 repr round trip)}

    Returns the list of written paths.
    """
    os.makedirs(directory, exist_ok=True)
    chosen = builtin_cases() if cases is None else cases
    written, index = [], []
    for case in chosen:
        arrays = {}
        encoded = _encode(case, "", arrays)
        stem = os.path.join(directory, case["name"])
        with open(stem + ".json", "w") as f:
            json.dump(encoded, f)
        onp.savez(stem + ".npz", **arrays)
        written += [stem + ".json", stem + ".npz"]
        index.append({"name": case["name"], "objective": case["objective"],
                      "json": case["name"] + ".json", "npz": case["name"] + ".npz"})
    with open(os.path.join(directory, "index.json"), "w") as f:
        json.dump({"format": FORMAT, "version": VERSION, "cases": index}, f, indent=1)
    from .describe import readme  # lazily: `python -m refscore.conformance.describe` runs that module

    with open(os.path.join(directory, "README.md"), "w", encoding="utf-8") as f:
        f.write(readme(TOLERANCES))
    return written + [os.path.join(directory, n) for n in ("index.json", "README.md")]


def load(directory, objective=None, arrays="json"):
    r"""Read the cases written by :func:`export` (needs only NumPy).

    .. math:: \texttt{load}(\texttt{export}(c)) = c

    Parameters
    ----------
    directory : the folder given to :func:`export`
    objective : keep only this objective's cases (default: all)
    arrays : "json" (default) to take the arrays from the JSON files, "npz" from the ``.npz`` files
    """
    if arrays not in ("json", "npz"):
        raise ValueError(f"arrays must be 'json' or 'npz', got {arrays!r}")
    path = os.path.join(directory, "index.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: is {directory!r} a folder written by export()?")
    with open(path) as f:
        index = json.load(f)
    if index.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} index (format {index.get('format')!r})")
    out = []
    for entry in index["cases"]:
        if objective is not None and entry["objective"] != objective:
            continue
        with open(os.path.join(directory, entry["json"])) as f:
            encoded = json.load(f)
        if arrays == "npz":
            with onp.load(os.path.join(directory, entry["npz"])) as npz:
                out.append(_decode(encoded, "", npz))
        else:
            out.append(_decode(encoded, "", None))
    return out
