r"""``refscore conformance``: list the objectives, export the cases, verify an implementation, check
a sampler step.

::

    refscore conformance list [-v]
    refscore conformance export DIR
    refscore conformance verify OBJECTIVE MODULE:FUNC|FILE.py:FUNC [--only GLOB] [--rtol R --atol A]
                                [--dtype float32] [--cases DIR]
    refscore conformance sampler {mala,ula,rwmh,mh} MODULE:FUNC [--h H] [--d 3] [--chains N] [--steps T]
                                 [--groups G] [--targets gauss,aniso,banana,mixture] [--alpha 0.005]
    refscore conformance sampler {mala,ula,rwmh,mh}-step MODULE:FUNC [--rtol R --atol A]

``MODULE`` is an importable module name (the current folder is on the path) or a ``.py`` file,
whose folder is put on the path so that it can import its siblings. Exit status (API.md): 0 every
case passes, 1 not conformant (the report says which case and why), 2 the adapter or the command
failed (it raised, returned the wrong shape, could not be imported, a bad option).
"""
from __future__ import annotations

import argparse

import importlib
import math
import importlib.util
import os
import sys
import traceback

NOT_CONFORMANT, FAILED = 1, 2


def _objectives_help():
    from ..conformance import OBJECTIVES

    return "one of: " + ", ".join(OBJECTIVES) + " (`refscore conformance list` prints them one a line)"


def add_parser(subparsers):
    r"""Register ``conformance`` and its sub-commands on the ``refscore`` parser.

    .. math:: \text{exit status} = 0 \iff \text{every case passes } (|g_i - r_i| \le \text{tol}_i)
    """
    p = subparsers.add_parser("conformance", help="check another implementation against refscore's cases")
    sub = p.add_subparsers(dest="conformance_command", required=True)
    ls = sub.add_parser("list", help="print the objectives, one a line")
    ls.add_argument("-v", "--verbose", action="store_true",
                    help="also each objective's number of cases and of known faults, and its per-example value")
    e = sub.add_parser("export", help="write every case as JSON + .npz, with a README of the fields")
    e.add_argument("directory")
    v = sub.add_parser("verify", help="run MODULE:FUNC on every case of OBJECTIVE; exit 1 if not conformant, "
                       "2 if the adapter fails", description="OBJECTIVE is " + _objectives_help())
    v.add_argument("objective", metavar="OBJECTIVE", help=_objectives_help())
    v.add_argument("target", metavar="MODULE:FUNC", help="FUNC(case) -> per-example values (or FILE.py:FUNC)")
    v.add_argument("--only", metavar="GLOB", default=None, help="check only the cases whose name matches, "
                   "e.g. '*-img*'")
    v.add_argument("--rtol", type=float, default=None, help="relative tolerance (default: the dtype's)")
    v.add_argument("--atol", type=float, default=None, help="absolute tolerance floor (default: the dtype's)")
    v.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    v.add_argument("--cases", default=None, help="a folder written by `export` (default: the built-in cases)")
    v.add_argument("--variant", metavar="CONVENTION", default=None,
                   help="check against a named convention of the objective instead of refscore's reference "
                   "(docs/conformance.md, conventions), e.g. 'reverse-diffusion predictor (VE)'")
    _add_sampler_parser(sub)
    return p


SAMPLER_MODES = ("mala", "ula", "rwmh", "mh", "mala-step", "ula-step", "rwmh-step", "mh-step")


def _add_sampler_parser(sub):
    """The ``sampler`` sub-command: statistical exactness (MODE) or the exact step replay (MODE-step)."""
    s = sub.add_parser("sampler", help="check a sampler step FUNC(state, h, rng, target): exactness on four "
                       "targets (MODE) or the exact replay with fixed z, u (MODE-step)",
                       description="MODE mala|ula|rwmh|mh: statistical exactness tests on several targets, plus a "
                       "replay that names known faults; MODE-step: the step fed fixed z and u for several steps, "
                       "compared exactly with the reference (docs/conformance.md, 'Sampler exactness').")
    s.add_argument("sampler", metavar="MODE", choices=SAMPLER_MODES, help=", ".join(SAMPLER_MODES))
    s.add_argument("target", metavar="MODULE:FUNC")
    s.add_argument("--h", type=_positive_float, default=None,
                   help="step size h > 0 (default: mala 0.3, ula 0.15, rwmh/mh 0.9; never 1/2)")
    s.add_argument("--d", type=_int_at_least(1), default=3, help="dimension d >= 1 (default 3)")
    s.add_argument("--chains", type=_int_at_least(2), default=8000,
                   help="chains, split into --groups independent calls (default 8000)")
    s.add_argument("--steps", type=_int_at_least(1), default=10, help="steps per run >= 1 (default 10)")
    s.add_argument("--groups", type=_int_at_least(2), default=40, help="independent groups of chains (default 40)")
    s.add_argument("--targets", default=None, help="comma-separated, among gauss,aniso,banana,mixture "
                   "(default all; ULA: gauss,aniso)")
    s.add_argument("--alpha", type=_positive_float, default=0.005, help="family-wise false-alarm rate (default 0.005)")
    s.add_argument("--rtol", type=float, default=1e-7, help="MODE-step: relative tolerance (float32: 1e-4)")
    s.add_argument("--atol", type=float, default=1e-10, help="MODE-step: absolute tolerance")
    s.add_argument("--seed", type=_int_at_least(0), default=0)


def _run_sampler(impl, args):
    from ..conformance.sampler_replay import check_sampler_step
    from ..conformance.statistical import check_sampler_exactness, takes_target

    if args.sampler.endswith("-step"):
        if not takes_target(impl):
            raise ValueError("the exact step replay needs FUNC(state, h, rng, target); a three-argument "
                             "FUNC(x, h, rng) is checked by the statistical modes only")
        return check_sampler_step(impl, args.sampler[:-len("-step")], rtol=args.rtol, atol=args.atol)
    targets = None if args.targets is None else tuple(t.strip() for t in args.targets.split(",") if t.strip())
    return check_sampler_exactness(impl, args.sampler, h=args.h, d=args.d, targets=targets, n_chains=args.chains,
                                   n_steps=args.steps, groups=args.groups, seed=args.seed, alpha=args.alpha)


def _positive_float(text):
    """argparse type: a finite number > 0 (argparse turns the error into one usage line, exit 2)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _int_at_least(minimum):
    """argparse type: an integer >= ``minimum``."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {value}")
        return value
    return parse


class AdapterNotFound(LookupError):
    """MODULE:FUNC could not be found: one line names what is missing (exit 2, no traceback)."""


def load_callable(target):
    r"""``"pkg.module:func"`` or ``"path/to/file.py:func"`` -> the function :math:`g`. A file's
    folder goes first on ``sys.path``, then the current folder, so an adapter can import the modules
    beside it and the user's own package from where the command runs.

    .. math:: g : \text{case} \mapsto (g_1, \dots, g_n)
    """
    module_name, sep, func = target.rpartition(":")
    if not sep or not module_name or not func:
        raise ValueError(f"expected MODULE:FUNC (e.g. my_losses:dsm_per_example), got {target!r}")
    if module_name.endswith(".py") or os.path.sep in module_name:
        if not os.path.exists(module_name):
            raise AdapterNotFound(f"no file {module_name!r} (from {target!r})")
        for folder in (os.getcwd(), os.path.dirname(os.path.abspath(module_name))):
            if folder not in sys.path:
                sys.path.insert(0, folder)
        spec = importlib.util.spec_from_file_location(os.path.basename(module_name)[:-3], module_name)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name is None or not module_name.startswith(e.name):
                raise  # the adapter itself imports something missing: its traceback line helps
            raise AdapterNotFound(f"no module {module_name!r} importable from {os.getcwd()} (from {target!r}); "
                                  "run from the adapter's folder or give path/to/file.py:FUNC") from None
    if not callable(getattr(module, func, None)):
        raise AdapterNotFound(f"module {module_name!r} has no function {func!r}; it defines "
                              f"{sorted(n for n in vars(module) if callable(vars(module)[n]) and not n.startswith('_'))}")
    return getattr(module, func)


def _listing(records, verbose):
    """The objectives one a line; verbose: with their cases, faults, conventions and per-example value,
    and totals."""
    if not verbose:
        return "\n".join(records)
    width = max(len(name) for name in records)
    faults = {name: sum(not f.convention for f in o.faults) for name, o in records.items()}
    conventions = {name: len(o.faults) - faults[name] for name, o in records.items()}
    lines = [f"{name:<{width}}  {len(o.cases):>2} cases  {faults[name]:>2} faults  {conventions[name]:>2} conventions"
             f"  {o.text}" for name, o in records.items()]
    n_cases = sum(len(o.cases) for o in records.values())
    return "\n".join(lines + [f"{len(records)} objectives, {n_cases} cases, {sum(faults.values())} known faults, "
                              f"{sum(conventions.values())} conventions"])


def _run(args):
    from .. import conformance

    if args.conformance_command == "list":
        print(_listing(conformance.REGISTRY, args.verbose))
        return 0
    if args.conformance_command == "export":
        paths = conformance.export(args.directory)
        print(f"wrote {len(paths)} files to {args.directory} ({len(conformance.cases())} cases; see README.md)")
        return 0
    impl = load_callable(args.target)
    if args.conformance_command == "verify":
        chosen = None if args.cases is None else conformance.load(args.cases, objective=args.objective)
        report = conformance.verify(args.objective, impl, cases=chosen, dtype=args.dtype, rtol=args.rtol,
                                    atol=args.atol, only=args.only, variant=args.variant)
    else:
        report = _run_sampler(impl, args)
    print(report)
    return 0 if report.passed else NOT_CONFORMANT


def main(args):
    r"""Run the parsed ``refscore conformance`` command; returns the exit status.

    .. math:: \text{status} = \begin{cases}0 & \text{conformant}\\ 1 & \text{not conformant}\\
              2 & \text{the adapter or the command failed}\end{cases}
    """
    try:
        return _run(args)
    except KeyboardInterrupt:
        raise
    except AdapterNotFound as e:
        print(f"refscore conformance: error: {e}", file=sys.stderr)
        return FAILED
    except Exception as e:  # an adapter may raise anything: report it, exit 2 ("could not answer")
        if os.environ.get("REFSCORE_DEBUG"):
            raise
        where = traceback.extract_tb(e.__traceback__)[-1]
        notes = " ".join(getattr(e, "__notes__", []))
        print(f"refscore conformance: error: {type(e).__name__}: {e} {notes}".rstrip()
              + f"\n  at {where.filename}:{where.lineno}", file=sys.stderr)
        return FAILED
