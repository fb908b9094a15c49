r"""The prose about the objectives, written from their records: ``export``'s README
(:func:`readme`) and the tables of ``docs/conformance.md`` (:func:`docs_tables`), which
``tests/test_conformance_records.py`` compares with the records so that they cannot drift.

Regenerate the docs' tables after adding an objective or a fault::

    python -m refscore.conformance.describe docs/conformance.md

It rewrites each block between ``<!-- generated: NAME -->`` and ``<!-- end generated -->``.

.. math:: \text{docs} = \text{render}(\text{records})
"""
from __future__ import annotations

import re
import sys

from .registry import DIFFUSION_OBJECTIVES, FAULTS, OBJECTIVES, REGISTRY, SCORE_OBJECTIVES

__all__ = ["readme", "docs_tables", "sync_docs", "BLOCK"]

BLOCK = re.compile(r"(<!-- generated: (\w+) -->\n).*?(<!-- end generated -->)", re.S)

_HEAD = """# refscore conformance cases

Each case is one JSON file (and an `.npz` with the same arrays). Arrays are objects
`{"dtype": "float64", "shape": [...], "data": [...]}` with `data` flat in **row-major (C)
order** (Julia/Fortran users: reshape with the reversed shape and permute). Points are rows:
`x` has shape `(n, *shape)`; `d` is the product of `shape`; flatten `x` to `(n, d)` row-major.
Conventions: p(x) = exp(-E(x))/Z, score s(x) = -grad E(x), losses in the ½ convention.

Fields of every case: `name`, `objective`, its inputs, and `expected` — (n,), or (n, k) where the
columns are listed — the per-example value your implementation must return (refscore's,
float64). Map objectives (marked "map") also have `expected_x` (n, *shape), the mapped points
(x̂, x′, a converted prediction, a sampler step); `expected` is then their squared norms ‖·‖²
(flattened): compare either.

Models (`model.kind`):
- `quadratic`: `A` (d, d) symmetric, `b` (d,): E(x) = ½ xᵀAx − bᵀx, s(x) = −Ax + b.
- `mlp`: `weights` = [W1, c1, ..., WK, cK], `activation` = "softplus": h0 = x,
  h_k = softplus(h_{k−1} W_k + c_k) for k < K, E(x) = h_{K−1} W_K + c_K (width 1); W_k is (in, out).
- `gaussian_family`: `mean` (d,), `cov` (d, d), `parametrization`: "ve": s(x, σ) is the exact score
  of N(mean, cov + σ²I); "vp": s(x, β) that of N(√(1−β) mean, (1−β) cov + βI).
  Quadratic and mlp models ignore the noise level.
"""

_DIFFUSION_HEAD = """
Diffusion objectives: `t` (n,) are times in [0, 1] or, for DDPM, 0-based integer steps into `betas`;
an `sde` is {"kind": "ve", "sigma_min", "sigma_max"} or {"kind": "vp"|"subvp", "beta_min", "beta_max"}.
"""


def _readme_line(o):
    value = o.text
    if o.columns:
        value = f"({len(o.columns)} columns: {', '.join(o.columns)}) {value}"
    if o.is_map:
        value += " (map)"
    if o.tolerances:
        value += " (default tolerance rtol {:g}, atol {:g})".format(*o.tolerances["float64"])
    return f"- `{o.name}`: {o.fields or '(no extra fields)'} — {value} [{o.source}]"


def readme(tolerances):
    r"""``export``'s README: the file format, the models, one line per objective (its fields and
    its per-example value, from its record) and the tolerances ``{"float64": (rtol, atol), ...}``.

    .. math:: |g_i - r_i| \le \text{rtol}\,|r_i| + \text{atol}\max(1, \max_j |r_j|)
    """
    (r64, a64), (r32, a32) = tolerances["float64"], tolerances["float32"]
    lines = [_HEAD, "Per objective (extra fields — value i of `expected` [source]):"]
    lines += [_readme_line(REGISTRY[name]) for name in SCORE_OBJECTIVES]
    lines += [_DIFFUSION_HEAD]
    lines += [_readme_line(REGISTRY[name]) for name in DIFFUSION_OBJECTIVES]
    lines += ["", "Tolerance: |got − expected| ≤ rtol |expected| + atol · max(1, max |expected|), per example;",
              f"float64: rtol = {r64:g}, atol = {a64:g}; float32: rtol = {r32:g}, atol = {a32:g}."]
    return "\n".join(lines) + "\n"


def _cell(text):
    return text.replace("|", "\\|")


def _objectives_table(names):
    rows = ["| objective | fields | per-example value | reference |", "|---|---|---|---|"]
    for name in names:
        o = REGISTRY[name]
        value = ("map: " if o.is_map else "") + (f"(n, {len(o.columns)}): " if o.columns else "") + o.equation
        rows.append(f"| `{name}` | {_cell(o.fields)} | {_cell(value)} | {_cell(o.source)} |")
    return "\n".join(rows) + "\n"


def _faults_table(conventions=False):
    head = "| objective | convention | what the variant computes, and who uses it |" if conventions else \
        "| objective | fault | what the code computes, and the source |"
    rows = [head, "|---|---|---|"]
    rows += [f"| `{o}` | {_cell(f.name)} | {_cell(f.explanation)} |" for o in OBJECTIVES for f in FAULTS[o]
             if f.convention == conventions]
    return "\n".join(rows) + "\n"


def docs_tables():
    r"""The generated tables of ``docs/conformance.md``, by block name: ``score`` and ``diffusion``
    (objective, fields, per-example value, reference), ``faults`` (objective, fault, explanation)
    and ``conventions`` (objective, legitimate variant, who uses it).

    .. math:: \text{one row per record (objectives) or per fault}
    """
    return {"score": _objectives_table(SCORE_OBJECTIVES), "diffusion": _objectives_table(DIFFUSION_OBJECTIVES),
            "faults": _faults_table(), "conventions": _faults_table(conventions=True)}


def sync_docs(text):
    r"""``text`` with every ``<!-- generated: NAME -->`` block replaced by :func:`docs_tables` ``[NAME]``.

    .. math:: \text{sync}(\text{sync}(t)) = \text{sync}(t)
    """
    tables = docs_tables()

    def fill(m):
        if m.group(2) not in tables:
            raise ValueError(f"unknown generated block {m.group(2)!r}; expected one of {sorted(tables)}")
        return m.group(1) + tables[m.group(2)] + m.group(3)
    return BLOCK.sub(fill, text)


if __name__ == "__main__":  # python -m refscore.conformance.describe docs/conformance.md
    for path in sys.argv[1:]:
        with open(path, encoding="utf-8") as f:
            old = f.read()
        new = sync_docs(old)
        if new != old:
            with open(path, "w", encoding="utf-8") as f:
                f.write(new)
        print(f"{path}: {'updated' if new != old else 'up to date'}")
