"""Command line: ``refscore tour | check | bench | conformance {list, export, verify, sampler} | sweep |
images mnist`` (``--backend``, ``--seed``, ``--out``).

Exit status: 0 done, 1 "the answer is no" (a failed check, a non-conformant implementation), 2
"could not answer": bad arguments or an error while running, printed as one line
``refscore: error: …``, never a traceback (set ``REFSCORE_DEBUG=1`` for one). ``--out`` is checked to be writable before any work.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

COMMANDS = """commands:
  refscore tour [--quick]                 the lecture end to end: figures + report.html (--quick: about a minute)
  refscore check                          the equivalence table of the score-matching identities
  refscore bench [--quick] [--torch]      throughput, against an in-process reference
  refscore conformance list               the objectives, one a line
  refscore conformance export DIR         every conformance case as JSON + .npz
  refscore conformance verify OBJECTIVE MODULE:FUNC
                                          check another implementation of an objective
  refscore conformance sampler {mala,ula} MODULE:FUNC
                                          statistical check of a sampler step
  refscore images mnist --out DIR [--steps N]
                                          28x28 MNIST: train, sample, judge (about 17 min on 2 cores)
  refscore sweep list                     the named sweeps, one a line
  refscore sweep NAME --out DIR [--workers N | --scheduler ADDR] [--quick]
                                          a grid of seeded cells on Dask: results.json + figure

tour, check and bench take --backend, --seed and --out; `refscore COMMAND --help` lists the options.
Exit status: 0 done, 1 the answer is no (a check failed, not conformant), 2 could not answer
(bad arguments or an error while running, printed as one line)."""


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
    """The ``refscore`` argument parser: ``tour``, ``check``, ``bench``, ``conformance``, ``sweep``, ``images``."""
    parser = argparse.ArgumentParser(prog="refscore", description="refscore: score matching and energy-based "
                                     "models, a read-along reference.", epilog=COMMANDS,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
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
    b.add_argument("--peers", action="store_true",
                   help="ULA-2D side by side with PyTorch, ebmkit, TorchEBM and blackjax (those installed)")
    from .conformance_cli import add_parser as add_conformance_parser  # conformance: 2 lines

    add_conformance_parser(sub)
    from .sweep_cli import add_parser as add_sweep_parser  # sweep: 2 lines

    add_sweep_parser(sub)
    from .images_cli import add_parser as add_images_parser  # images mnist: 2 lines

    add_images_parser(sub, _common)
    return parser


def check_writable(out):
    """Refuse an ``--out`` folder that could not be created or written, before any work starts,
    and leave nothing behind: a probe file (an existing folder) or a probe folder (in the nearest
    existing ancestor) is created and removed. A real write, not ``os.access``, which says yes to
    root even where the file system refuses (``/proc``, a read-only mount)."""
    if out is None:
        return None
    if not str(out).strip():
        raise ValueError(f"--out must name a folder, got {out!r}")
    path = os.path.abspath(out)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        raise ValueError(f"--out {out!r} cannot be a folder: {path!r} is a file")
    try:
        if path == os.path.abspath(out):
            with tempfile.TemporaryFile(dir=path):
                pass
        else:
            os.rmdir(tempfile.mkdtemp(dir=path))
    except OSError as e:
        raise ValueError(f"--out {out!r} is not writable: cannot create anything in {path!r} "
                         f"({e.strerror or e}); choose another folder") from None
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
    if args.command == "bench" and args.peers:
        from .bench_peers import run_peers

        return run_peers(backend=args.backend, seed=args.seed, out=check_writable(args.out or "bench-output"),
                         quick=args.quick)
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
    if args.command == "sweep":
        from .sweep_cli import main as sweep_main

        check_writable(args.out)
        return sweep_main(args)
    return 2


#: exit status when the command could not answer (bad input, missing backend, unwritable --out):
#: 0 is "done, the answer is yes", 1 "the answer is no" (a failed check), 2 "could not answer"
COULD_NOT_ANSWER = 2


def main(argv=None):
    """Parse ``argv`` and run; every error becomes one line on stderr and exit status 2 ("could
    not answer"), which a user's CI can tell from a failed check (1)."""
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
        return COULD_NOT_ANSWER


if __name__ == "__main__":
    sys.exit(main())
