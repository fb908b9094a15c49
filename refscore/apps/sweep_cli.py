r"""``refscore sweep``: list the shipped sweeps, or run one on Dask and write its table and figure.

::

    refscore sweep list
    refscore sweep NAME --out DIR [--workers N | --scheduler ADDRESS] [--quick] [--seed S] [--backend B] [--batch K]

Writes ``DIR/results.json`` (the plan, the cell records, the reduced table — means ± standard
errors, no timing inside —, the sweep's summary, the failed cells, and a ``timing`` section),
``DIR/NAME.png``, and keeps ``DIR/cells.jsonl`` (one line per finished cell: a rerun with the same
arguments runs only the cells not finished). ``--workers 0`` runs the cells in this process
without Dask. The exit status is 0 when every cell finished, 1 when some raised (each is listed
with its parameters; the table marks its row).
"""
from __future__ import annotations

import os
import sys
import textwrap


def add_parser(subparsers):
    r"""Register ``sweep`` on the ``refscore`` parser.

    .. math:: \text{exit status} = 0 \iff \text{every cell finished}
    """
    p = subparsers.add_parser("sweep", help="run a grid of seeded cells on Dask: a table with standard errors")
    p.add_argument("name", metavar="NAME", help="`list` (the sweeps, one per line), or the sweep to run")
    p.add_argument("--out", default=None, help="output folder (required to run); finished cells there are kept")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None,
                       help="worker processes of the in-process Dask LocalCluster (default: one per core; "
                            "0: a plain loop in this process, no Dask)")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="a running Dask scheduler, e.g. tcp://10.0.0.5:8786, instead of a local cluster")
    p.add_argument("--quick", action="store_true", help="the small grid (well under a minute on 2 cores)")
    p.add_argument("--seed", type=int, default=0, help="root seed, an integer >= 0 (default 0)")
    p.add_argument("--backend", default=None,
                   help="array backend of the cells that use one (ula-bias, q22-projections), e.g. cupy on GPU workers")
    p.add_argument("--batch", type=int, default=1,
                   help="cells per Dask task (default 1); raise it for cells shorter than ~10 ms")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _overlay(ax, summary):
    for r in summary.get("sigma_star", []):  # q21: sigma*(n) ± SE on the error curves
        ax.axvspan(r["sigma_star"] - r["se"], r["sigma_star"] + r["se"], alpha=0.15, color="grey")
        ax.axvline(r["sigma_star"], ls=":", color="grey", lw=0.8)
    rows = summary.get("ula", [])
    if rows:  # ula-bias: the closed form 1 / (1 - h/2)
        ax.plot([r["h"] for r in rows], [r["closed_form"] for r in rows], "k--", lw=1, label="1/(1 - h/2)")


def draw(results, path):
    r"""The sweep's figure: its :class:`~refscore.sweep.Plot` ``y ± SE`` against ``x``, one line per group.

    .. math:: \bar y(x) \pm \mathrm{SE}(\bar y(x))
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..sweep import get

    spec = get(results["sweep"]).plot
    if spec is None or not results["table"]:
        return None
    timing = {tuple((a, r[a]) for a in results["axes"]): r for r in results["timing"].get("per_point", [])}
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    groups = {}
    for row in results["table"]:
        extra = timing.get(tuple((a, row[a]) for a in results["axes"]), {})
        x, y = row.get(spec.x, extra.get(spec.x)), row.get(spec.y)
        if x is not None and y is not None:
            groups.setdefault(row.get(spec.group) if spec.group else None, []).append((x, y, row.get(f"{spec.y}_se") or 0))
    for g, pts in groups.items():
        pts.sort()
        ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o", ms=3, capsize=2,
                    label=None if g is None else f"{spec.group} = {g}")
    _overlay(ax, results.get("summary", {}))
    ax.set(xscale="log" if spec.logx else "linear", yscale="log" if spec.logy else "linear", xlabel=spec.x,
           ylabel=f"{spec.y} (mean ± SE over seeds)")
    ax.set_title(textwrap.fill(results["title"], 70), fontsize=9)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _print_summary(results):
    for r in results["summary"].get("sigma_star", []):
        print(f"sigma*(n={r['n']}) = {r['sigma_star']:.4g} ± {r['se']:.2g}"
              + ("  (at the edge of the grid)" if r["at_grid_edge"] else ""))
    if "slope" in results["summary"]:
        s = results["summary"]
        print(f"d log sigma* / d log n = {s['slope']:.3f} ± {s['slope_se']:.3f} (theory {s['slope_theory']:.3f})")
    for r in results["summary"].get("ula", []):
        z = "—" if r["z"] is None else f"{r['z']:+.2f}"
        print(f"h = {r['h']:<5g} variance {r['variance']:.4f} ± {r['se'] or 0:.2g}   1/(1-h/2) = {r['closed_form']:.4f}"
              f"   z = {z}")


def main(args):
    r"""Run the parsed ``refscore sweep`` command; returns the exit status.

    .. math:: \text{status} = 0 \text{ if no cell failed, else } 1
    """
    from .. import sweep

    if args.name == "list":
        print("\n".join(sweep.names()))
        return 0
    chosen = sweep.get(args.name)
    if args.out is None:
        raise ValueError(f"refscore sweep {args.name} needs --out DIR (where the results and the cell records go)")
    if args.seed < 0:
        raise ValueError(f"--seed must be an integer >= 0, got {args.seed}")
    if args.workers is not None and args.workers < 0:
        raise ValueError(f"--workers must be an integer >= 0 (0: no Dask, the cells run in this process), "
                         f"got {args.workers}")
    if args.batch < 1:
        raise ValueError(f"--batch (cells per Dask task) must be an integer >= 1, got {args.batch}")
    if args.scheduler is not None and not args.scheduler.strip():
        raise ValueError(f"--scheduler must be an address such as tcp://10.0.0.5:8786, got {args.scheduler!r}")
    size = chosen.size(args.quick)
    if args.backend is not None:
        size = size._replace(fixed={**size.fixed, "backend": args.backend})
    results = sweep.run(chosen, args.out, workers=args.workers, scheduler=args.scheduler, quick=args.quick,
                        seed=args.seed, size=size, show_progress=not args.no_progress, batch=args.batch)
    print(sweep.markdown(results["table"], title=results["title"]))
    _print_summary(results)
    t = results["timing"]
    rate = "—" if t["cells_per_s"] is None else f"{t['cells_per_s']:.1f}"
    print(f"{results['n_done']}/{results['n_cells']} cells done, {results['n_failed']} failed; "
          f"{t['cells_run']} run in {t['wall_s']:.1f} s ({t['where']}; {rate} cells/s after a {t['startup_s']:.1f} s start)")
    figure = draw(results, os.path.join(args.out, f"{chosen.name}.png"))
    print(f"wrote {os.path.join(args.out, 'results.json')}" + (f" and {figure}" if figure else ""))
    if results.get("ignored_record_lines"):
        print(f"note: {results['ignored_record_lines']} line(s) of {os.path.join(args.out, 'cells.jsonl')} were not "
              "cell records (cut short or hand-edited) and were ignored; their cells ran again", file=sys.stderr)
    for f in results["failed"]:
        print(f"FAILED cell {f['index']} {f['params']}: {f['error']}", file=sys.stderr)
    return 1 if results["n_failed"] else 0
