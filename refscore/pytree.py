r"""Pytrees: parameters as nested dicts/lists/tuples of arrays (as in autograd's ``flatten``), with
a fixed leaf order so that checkpoints and optimizer states line up."""
from __future__ import annotations

__all__ = ["tree_map", "tree_leaves", "tree_unflatten"]


def tree_map(f, *trees):
    r"""Apply ``f`` leaf-wise to pytrees of the same structure (nested dicts/lists/tuples of
    arrays): :math:`\mathrm{map}(f, (t_1,\dots,t_k))_\ell = f(t_{1,\ell},\dots,t_{k,\ell})`."""
    t = trees[0]
    if isinstance(t, dict):
        return {k: tree_map(f, *[tr[k] for tr in trees]) for k in t}
    if isinstance(t, (list, tuple)):
        return type(t)(tree_map(f, *parts) for parts in zip(*trees))
    return f(*trees)


def tree_leaves(t, prefix=""):
    """``[(path, leaf)]`` in a fixed order (dict keys sorted)."""
    if isinstance(t, dict):
        return [x for k in sorted(t) for x in tree_leaves(t[k], f"{prefix}{k}/")]
    if isinstance(t, (list, tuple)):
        return [x for i, v in enumerate(t) for x in tree_leaves(v, f"{prefix}{i}/")]
    return [(prefix.rstrip("/"), t)]


def tree_unflatten(template, leaves):
    r"""The pytree shaped like ``template`` whose leaves are ``leaves``, taken in
    :func:`tree_leaves`' order (dict keys sorted): the inverse of flattening,

    .. math:: \mathrm{unflatten}\big(t,\ [\ell \text{ for } (\_, \ell) \in \mathrm{leaves}(t)]\big) = t
    """
    it = iter(leaves)

    def walk(t):
        if isinstance(t, dict):
            return {k: walk(t[k]) for k in sorted(t)}
        if isinstance(t, (list, tuple)):
            return type(t)(walk(v) for v in t)
        return next(it)

    out = walk(template)
    if next(it, _END) is not _END:
        raise ValueError("tree_unflatten: more leaves than the template has")
    return out


_END = object()
