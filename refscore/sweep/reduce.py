r"""From cell records to a table: one row per grid point, each number as a mean ± standard error.

For a grid point with :math:`k` finished replicates :math:`y_1,\dots,y_k` of a cell value,

.. math:: \bar y = \frac1k\sum_r y_r,\qquad
          \mathrm{SE}(\bar y) = \sqrt{\frac{1}{k(k-1)}\sum_r (y_r-\bar y)^2}

(the standard error of a mean of i.i.d. draws; the replicates are i.i.d. because their seeds are
independent ``SeedSequence`` streams). Records are taken in cell-index order and summed with
``math.fsum``, so the table does not depend on the order in which cells finished.
"""
from __future__ import annotations

import math

from .core import finite_or_none

__all__ = ["mean_se", "reduce_records", "markdown"]


def mean_se(values):
    r"""Mean and standard error of the mean of ``values`` (SE ``None`` for fewer than 2):

    .. math:: \bar y = \tfrac1k\textstyle\sum y_r,\quad \mathrm{SE}=\sqrt{\textstyle\sum(y_r-\bar y)^2/(k(k-1))}
    """
    k = len(values)
    if k == 0:
        return None, None
    m = math.fsum(values) / k
    if k < 2 or not math.isfinite(m):
        return finite_or_none(m), None
    return m, math.sqrt(math.fsum((y - m) ** 2 for y in values) / (k * (k - 1)))


def reduce_records(records, cells, axes, timing=()):
    r"""The table of a sweep: one row per grid point, in grid order.

    .. math:: \text{row}_p = \big(\text{point}_p,\ k_p,\ f_p,\ \{\bar y_m \pm \mathrm{SE}_m\}_m\big)

    Parameters
    ----------
    records : dict index -> record (the last record of each cell; see :mod:`refscore.sweep.store`)
    cells : every :class:`~refscore.sweep.core.Cell` of the plan
    axes : the grid axes (the columns that identify a row)
    timing : value names left out of the table (wall times)

    Returns
    -------
    list of dict : ``axes…``, ``seeds`` (finished replicates), ``failed`` (replicates that raised),
    ``missing`` (not run yet), and for each value ``m``: ``m`` (mean) and ``m_se``. A row with
    ``failed > 0`` is marked: its means are over the replicates that finished.
    """
    by_point = {}
    for c in cells:
        by_point.setdefault(c.point, []).append(c)
    rows = []
    for p, group in sorted(by_point.items()):
        row = {a: group[0].params[a] for a in axes}
        done = [records[c.index] for c in group if c.index in records and "values" in records[c.index]]
        row["seeds"] = len(done)
        row["failed"] = sum(1 for c in group if c.index in records and "error" in records[c.index])
        row["missing"] = sum(1 for c in group if c.index not in records)
        names = []
        for r in done:
            names += [m for m in r["values"] if m not in names and m not in timing]
        for m in names:
            mean, se = mean_se([r["values"][m] for r in done if m in r["values"]])
            row[m], row[f"{m}_se"] = finite_or_none(mean), se
        rows.append(row)
    return rows


def _fmt(v):
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def markdown(table, title=None):
    r"""The table as Markdown, each value written ``mean ± SE``; rows with failed cells say so.

    .. math:: \text{cell text} = \bar y \pm \mathrm{SE}
    """
    if not table:
        return "(empty table)"
    keys = [k for k in table[0] if not k.endswith("_se") and k not in ("failed", "missing")]
    for row in table[1:]:
        keys += [k for k in row if k not in keys and not k.endswith("_se") and k not in ("failed", "missing")]
    lines = ([f"**{title}**", ""] if title else []) + ["| " + " | ".join(keys + ["status"]) + " |",
                                                        "|" + "---|" * (len(keys) + 1)]
    for row in table:
        text = []
        for k in keys:
            v, se = row.get(k), row.get(f"{k}_se")
            text.append(_fmt(v) if se is None else f"{_fmt(v)} ± {se:.2g}")
        status = "ok"
        if row.get("failed"):
            status = f"**FAILED {row['failed']}**"
        elif row.get("missing"):
            status = f"missing {row['missing']}"
        lines.append("| " + " | ".join(text + [status]) + " |")
    return "\n".join(lines)
