"""Command line: ``refscore tour | check | bench | images mnist`` (``--backend``, ``--seed``, ``--out``).

Errors print one line, ``refscore: error: …``, and exit with status 2 (bad arguments) or 1 (a
failure while running); never a traceback (set ``REFSCORE_DEBUG=1`` for one). ``--out`` is checked to be writable before any work.
"""
from __future__ import annotations

import argparse
import os
import sys


def _seed(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seed must be an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"--seed must be an integer >= 0, got {value}")
    return value


def _common(p):
    p.add_argument("--backend", default=None, help="numpy (default), cupy, or strict")
    p.add_argument("--seed", type=_seed, default=0, help="random seed, an integer >= 0 (default 0)")
    p.add_argument("--out", default=None, help="output folder")


def build_parser():
    """The ``refscore`` argument parser: ``tour``, ``check``, ``bench``, ``conformance``, ``images``."""
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
    from .images_cli import add_parser as add_images_parser  # images mnist: 2 lines

    add_images_parser(sub, _common)
    return parser


def check_writable(out):
    """Refuse an ``--out`` folder that could not be created or written, before any work starts
    (and without creating anything: the nearest existing ancestor must be a writable folder)."""
    if out is None:
        return None
    path = os.path.abspath(out)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        raise ValueError(f"--out {out!r} cannot be a folder: {path!r} is a file")
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out!r} is not writable (no write permission on {path!r})")
    return out


def _run(args):
    from .. import backends

    backends.get(getattr(args, "backend", None))  # an unknown or unavailable backend fails before any work
    if args.command == "tour":
        from .tour import run_tour

        return run_tour(backend=args.backend, seed=args.seed, out=check_writable(args.out or "tour-output"),
                        quick=args.quick)
    if args.command == "check":
        from .check import run_check

        return run_check(backend=args.backend, seed=args.seed, out=check_writable(args.out))
    if args.command == "bench":
        from .bench import run_bench

        return run_bench(backend=args.backend, seed=args.seed, out=check_writable(args.out or "bench-output"),
                         quick=args.quick, torch=args.torch)
    if args.command == "images":
        from .images_cli import run_images

        args.out = check_writable(args.out or f"{args.dataset}-output")
        return run_images(args)
    if args.command == "conformance":
        from .conformance_cli import main as conformance_main

        return conformance_main(args)
    return 2


def main(argv=None):
    """Parse ``argv`` and run; every error becomes one line on stderr and a non-zero exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse: usage + one error line, exit 2
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("refscore: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, ImportError, RuntimeError, OSError, FloatingPointError) as e:
        if os.environ.get("REFSCORE_DEBUG"):  # the full traceback, for developers
            raise
        print(f"refscore: error: {e}".splitlines()[0], file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
