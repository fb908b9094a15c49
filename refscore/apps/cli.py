"""Command line: ``refscore tour | check | bench`` (``--backend``, ``--seed``, ``--out``)."""
from __future__ import annotations

import argparse
import sys


def _common(p):
    p.add_argument("--backend", default=None, help="numpy (default), cupy, or strict")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", default=None, help="output folder")


def build_parser():
    parser = argparse.ArgumentParser(prog="refscore", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("tour", help="the lecture, end to end: figures + report.md/report.html")
    _common(t)
    t.add_argument("--quick", action="store_true", help="small sizes (about a minute)")
    c = sub.add_parser("check", help="the equivalence table; non-zero exit if any identity fails")
    _common(c)
    b = sub.add_parser("bench", help="throughput table, ratios against an in-process reference")
    _common(b)
    b.add_argument("--quick", action="store_true", help="small sizes")
    b.add_argument("--torch", action="store_true", help="also measure the PyTorch reference if installed")
    from .conformance_cli import add_parser as add_conformance_parser  # conformance: 2 lines

    add_conformance_parser(sub)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command == "tour":
        from .tour import run_tour

        return run_tour(backend=args.backend, seed=args.seed, out=args.out or "tour-output", quick=args.quick)
    if args.command == "check":
        from .check import run_check

        return run_check(backend=args.backend, seed=args.seed, out=args.out)
    if args.command == "bench":
        from .bench import run_bench

        return run_bench(backend=args.backend, seed=args.seed, out=args.out or "bench-output",
                         quick=args.quick, torch=args.torch)
    if args.command == "conformance":
        from .conformance_cli import main as conformance_main

        return conformance_main(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
