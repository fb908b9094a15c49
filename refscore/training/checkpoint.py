r"""Training checkpoints as transactions: one file, written atomically, validated on load.

A checkpoint is one ``.npz`` file (never pickled) holding

- the arrays of every state tree (``params``, ``opt_state``, …) under ``tree/<name>/<leaf path>``,
- every history list under ``history/<name>`` (float64),
- ``meta``: a JSON string with the step, ``n_steps``, the backend, the configuration that must
  match on resume (optimizer kind and hyper-parameters, data dtype), the random generator's
  state, each tree's leaf paths with shapes and dtypes, and a SHA-256 content hash of all of it.

The file is written to a temporary name in the same directory, flushed to disk (``fsync``) and
renamed over the previous checkpoint with :func:`os.replace`, which is atomic on POSIX and
Windows: a reader sees the old checkpoint or the new one, never a mixture, and a run killed
mid-write leaves only a stray ``.checkpoint-*.tmp`` file that :func:`load` never reads and
:func:`prepare` removes.

The content hash is

.. math:: h = \mathrm{SHA256}\big(\mathrm{json}(\mathrm{meta}\setminus h)\,\|\,
          \textstyle\Vert_{a}\ (\mathrm{name}_a, \mathrm{dtype}_a, \mathrm{shape}_a, \mathrm{bytes}_a)\big)

over the sorted array names (FIPS 180-4 for SHA-256), so a flipped byte anywhere is caught.
"""
from __future__ import annotations

import glob
import hashlib
import io
import json
import numbers
import os
import tempfile
import zipfile

import numpy

from .. import backends
from ..pytree import tree_leaves, tree_unflatten

__all__ = ["CheckpointError", "CheckpointMismatch", "CheckpointCorrupt", "FILENAME", "prepare", "save", "load",
           "inspect", "tree_spec"]

FILENAME = "checkpoint.npz"
FORMAT = "refscore-checkpoint/1"
_TMP_PREFIX = ".checkpoint-"
_HINT = "pass resume=False to start afresh (or delete the file)"


class CheckpointError(ValueError):
    r"""A checkpoint cannot be resumed; the message names the file and says what to do.

    .. math:: \text{resume} \iff \text{every recorded field} = \text{the same field of this run}
    """


class CheckpointMismatch(CheckpointError):
    r"""The checkpoint was written by a different run (field, both values and the file named).

    .. math:: \exists\,f:\ f_{\text{checkpoint}} \neq f_{\text{this run}}
    """

    def __init__(self, path, field, saved, current, why="does not match"):
        self.path, self.field, self.saved, self.current = str(path), field, saved, current
        super().__init__(f"checkpoint {self.path}: {field} {why}: the checkpoint has {_show(saved)}, this run has "
                         f"{_show(current)}; {_HINT}")


def _show(value):
    # an optimizer config reads as a call, keys sorted on both sides of the message
    if isinstance(value, dict) and "kind" in value:
        args = ", ".join(f"{k}={value[k]!r}" for k in sorted(value) if k != "kind")
        return f"{value['kind']}({args})"
    return value


class CheckpointCorrupt(CheckpointError):
    r"""The file is unreadable, truncated, or its content hash is wrong.

    .. math:: h_{\text{stored}} \neq \mathrm{SHA256}(\text{content})\ \text{or unreadable}
    """

    def __init__(self, path, detail):
        self.path, self.detail = str(path), detail
        super().__init__(f"checkpoint {self.path} is corrupt or truncated ({detail}); {_HINT}")


# ----- tree layout --------------------------------------------------------------------------
def tree_spec(tree):
    r"""``[[path, shape, dtype], …]`` for every leaf of a pytree, in the checkpoint's leaf order.

    Python numbers (an optimizer's step count) are recorded as ``shape [], dtype "int"`` (or
    ``"float"``) and come back as Python numbers.

    .. math:: \mathrm{spec}(\theta) = [(\mathrm{path}_i, \mathrm{shape}_i, \mathrm{dtype}_i)]_i
    """
    spec = []
    for path, leaf in tree_leaves(tree):
        if isinstance(leaf, numbers.Number) and not hasattr(leaf, "dtype"):
            spec.append([path, [], "int" if isinstance(leaf, numbers.Integral) else "float"])
        else:
            spec.append([path, [int(s) for s in numpy.shape(leaf)], str(leaf.dtype)])
    return spec


# ----- writing --------------------------------------------------------------------------------
def prepare(directory):
    r"""Create ``directory`` if needed, prove it writable, remove stray temporary files of a killed
    run, and return the checkpoint path ``directory/checkpoint.npz``.

    Raises ``ValueError`` naming ``checkpoint_dir`` and the reason before any training work.

    .. math:: \text{path} = \text{directory}/\texttt{checkpoint.npz}
    """
    directory = os.fspath(directory)
    try:
        os.makedirs(directory, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=directory, prefix=_TMP_PREFIX, suffix=".tmp")
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise ValueError(f"checkpoint_dir {directory!r} is not a writable directory ({e.strerror or e}); "
                         "pass a directory you can write to, or checkpoint_dir=None") from None
    for stray in glob.glob(os.path.join(glob.escape(directory), _TMP_PREFIX + "*.tmp")):
        os.remove(stray)
    return os.path.join(directory, FILENAME)


def _digest(meta, arrays):
    h = hashlib.sha256(json.dumps({k: v for k, v in meta.items() if k != "sha256"}, sort_keys=True).encode())
    for name in sorted(arrays):
        a = numpy.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save(path, state):
    r"""Write ``state`` to ``path`` atomically (temporary file, ``fsync``, :func:`os.replace`).

    ``state`` is a dict: ``step``, ``n_steps`` (ints), ``trees`` (name → pytree of backend arrays
    and Python ints), ``history`` (name → list of floats), ``rng`` (``bk.rng_state(rng)``) and
    ``config`` (a JSON-able dict whose ``"backend"`` names the backend of the arrays).
    A non-finite floating-point leaf raises ``FloatingPointError`` and leaves ``path`` untouched.

    .. math:: \text{file} \leftarrow \text{state}\ \text{(all or nothing)}
    """
    bk = backends.get(state["config"]["backend"])
    arrays, spec = {}, {}
    for name, tree in state["trees"].items():
        spec[name] = tree_spec(tree)
        for leaf_path, leaf in tree_leaves(tree):
            a = numpy.asarray(bk.to_numpy(leaf))
            if a.dtype.kind in "fc" and not numpy.all(numpy.isfinite(a)):
                raise FloatingPointError(
                    f"refusing to save a non-finite state at step {state['step']}: {name} leaf {leaf_path!r} has "
                    f"NaN or inf; {path} was not touched")
            arrays[f"tree/{name}/{leaf_path}"] = a
    for name, values in state["history"].items():
        arrays[f"history/{name}"] = numpy.asarray(values, dtype="float64")
    meta = {"format": FORMAT, "step": int(state["step"]), "n_steps": int(state["n_steps"]),
            "config": state["config"], "rng": state["rng"], "spec": spec}
    meta["sha256"] = _digest(meta, arrays)
    _write_atomically(os.fspath(path), arrays, meta)


def _write_atomically(path, arrays, meta):
    buf = io.BytesIO()
    numpy.savez(buf, meta=numpy.array(json.dumps(meta, sort_keys=True)), **arrays)
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=_TMP_PREFIX, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buf.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    try:  # make the rename itself durable (POSIX); Windows cannot open a directory
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


# ----- reading --------------------------------------------------------------------------------
# the fields every checkpoint's meta holds, with their JSON types (a file of the right format
# whose meta lacks one, or holds the wrong type, is corrupt, not a Python error)
_META_FIELDS = {"step": int, "n_steps": int, "config": dict, "spec": dict}


def _read(path):
    try:
        if os.path.exists(path) and not zipfile.is_zipfile(path):
            raise CheckpointCorrupt(path, "not a .npz (zip) file: cut short, or another kind of file")
        with numpy.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(str(arrays.pop("meta")))
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise CheckpointCorrupt(path, f"not a {FORMAT} file")
        for field, kind in _META_FIELDS.items():
            if not isinstance(meta.get(field), kind) or isinstance(meta.get(field), bool):
                raise CheckpointCorrupt(path, f"its meta field {field!r} should be of type {kind.__name__}, got "
                                              f"{meta.get(field)!r}")
        return meta, arrays
    except CheckpointError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
        # BadZipFile, JSONDecodeError (a ValueError), a missing "meta" entry: all mean a bad file
        raise CheckpointCorrupt(path, f"{type(e).__name__}: {e}") from None


def _verified(path):
    meta, arrays = _read(path)
    if meta.get("sha256") != _digest(meta, arrays):
        raise CheckpointCorrupt(path, "content hash mismatch")
    return meta, arrays


def _check_trees(path, saved, expected):
    if sorted(saved) != sorted(expected):
        raise CheckpointMismatch(path, "state trees", sorted(saved), sorted(expected))
    for name in sorted(expected, key=lambda n: (n != "params", n)):  # the parameters first: the likeliest cause
        s, e = saved[name], expected[name]
        if [x[0] for x in s] != [x[0] for x in e]:
            raise CheckpointMismatch(path, f"{name} structure (leaf paths)", [x[0] for x in s], [x[0] for x in e])
        for (leaf, s_shape, s_dtype), (_, e_shape, e_dtype) in zip(s, e):
            if list(s_shape) != list(e_shape):
                raise CheckpointMismatch(path, f"{name} leaf {leaf!r} shape", tuple(s_shape), tuple(e_shape))
            if s_dtype != e_dtype:
                raise CheckpointMismatch(path, f"{name} leaf {leaf!r} dtype", s_dtype, e_dtype)


def _check_meta(path, meta, expect):
    config, want = meta.get("config", {}), expect["config"]
    for key in ["backend"] + sorted(k for k in want if k != "backend"):
        if config.get(key) != want[key]:
            raise CheckpointMismatch(path, key, config.get(key), want[key])
    if meta["step"] > expect["n_steps"]:
        raise CheckpointMismatch(path, "step", f"step {meta['step']}", f"n_steps={expect['n_steps']}",
                                 why="is past the end of this run")
    _check_trees(path, meta["spec"], {k: tree_spec(t) for k, t in expect["trees"].items()})


def inspect(path):
    r"""The verified metadata of a checkpoint (step, ``n_steps``, config, leaf specs), without
    loading it into a run; raises :class:`CheckpointCorrupt` like :func:`load`.

    .. math:: \text{meta} \quad\text{with}\quad h_{\text{stored}} = h(\text{file})
    """
    return _verified(os.fspath(path))[0]


def load(path, expect, rng):
    r"""Read, verify and return the state saved at ``path``; restore ``rng`` to its saved state.

    ``expect`` is the state this run would start from (same keys as for :func:`save`). Resume
    is refused with :class:`CheckpointMismatch` when the backend, any ``config`` entry (optimizer
    kind and hyper-parameters, data dtype), a tree's leaf paths, a leaf's shape or dtype, or the
    generator type differ, or when the checkpoint's step exceeds ``expect["n_steps"]``; an
    unreadable file or a wrong content hash is :class:`CheckpointCorrupt`. ``rng`` is changed
    only when every check passed.

    .. math:: \text{state} = \text{file} \quad\text{iff}\quad h_{\text{stored}} = h(\text{file})
              \ \wedge\ \text{fields match}
    """
    path = os.fspath(path)
    meta, arrays = _verified(path)
    try:
        _check_meta(path, meta, expect)
    except (KeyError, IndexError, TypeError) as e:  # a leaf list of the wrong shape
        raise CheckpointCorrupt(path, f"its leaf list is malformed ({type(e).__name__}: {e})") from None
    bk = backends.get(meta["config"]["backend"])
    try:
        trees = _trees(arrays, meta, expect, bk)
    except (KeyError, IndexError, TypeError, ValueError) as e:  # a hashed file whose arrays disagree with its meta
        raise CheckpointCorrupt(path, f"its arrays do not match its leaf list ({type(e).__name__}: {e})") from None
    history = {k[len("history/"):]: arrays[k].tolist() for k in arrays if k.startswith("history/")}
    n_loss = len(history.get("loss", []))
    if n_loss != meta["step"]:
        raise CheckpointCorrupt(path, f"loss history has {n_loss} entries for step {meta['step']}")
    _restore_rng(path, bk, rng, meta["rng"])
    return {"step": meta["step"], "n_steps": meta["n_steps"], "trees": trees, "history": history,
            "rng": meta["rng"], "config": meta["config"]}


def _trees(arrays, meta, expect, bk):
    trees = {}
    for name, template in expect["trees"].items():
        leaves = [arrays[f"tree/{name}/{p}"] for p, _ in tree_leaves(template)]
        python = {"int": int, "float": float}
        trees[name] = tree_unflatten(template, [python[s[2]](a) if s[2] in python else bk.asarray(a)
                                          for a, s in zip(leaves, meta["spec"][name])])
    return trees


def _restore_rng(path, bk, rng, saved):
    current = bk.rng_state(rng)
    kind = lambda s: s.get("bit_generator") if isinstance(s, dict) else type(s).__name__  # noqa: E731
    if kind(saved) != kind(current):
        raise CheckpointMismatch(path, "random generator", kind(saved), kind(current))
    try:
        bk.set_rng_state(rng, saved)
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointCorrupt(path, f"random generator state: {e}") from None
