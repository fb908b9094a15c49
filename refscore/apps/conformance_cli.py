r"""``refscore conformance``: export the cases, verify an implementation, check a sampler step.

::

    refscore conformance export DIR
    refscore conformance verify OBJECTIVE MODULE:FUNC [--dtype float32] [--cases DIR]
    refscore conformance sampler {mala,ula} MODULE:FUNC [--h 0.5] [--d 1] [--chains N] [--steps T]

``MODULE`` is an importable module name (the current folder is on the path) or a ``.py`` file.
The exit status is 0 when every case passes, 1 when one fails (the report says which and why).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys


def add_parser(subparsers):
    r"""Register ``conformance`` and its three sub-commands on the ``refscore`` parser.

    .. math:: \text{exit status} = 0 \iff \text{every case passes } (|g_i - r_i| \le \text{tol}_i)
    """
    p = subparsers.add_parser("conformance", help="check another implementation against refscore's cases")
    sub = p.add_subparsers(dest="conformance_command", required=True)
    e = sub.add_parser("export", help="write every case as JSON + .npz, with a README of the fields")
    e.add_argument("directory")
    v = sub.add_parser("verify", help="run MODULE:FUNC on every case of OBJECTIVE; non-zero exit on failure")
    v.add_argument("objective")
    v.add_argument("target", metavar="MODULE:FUNC", help="FUNC(case) -> (n,) per-example values")
    v.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    v.add_argument("--cases", default=None, help="a folder written by `export` (default: the built-in cases)")
    s = sub.add_parser("sampler", help="statistical check of a step FUNC(x, h, rng) on N(0, I)")
    s.add_argument("sampler", choices=("mala", "ula"))
    s.add_argument("target", metavar="MODULE:FUNC")
    s.add_argument("--h", type=float, default=0.5)
    s.add_argument("--d", type=int, default=1)
    s.add_argument("--chains", type=int, default=20_000)
    s.add_argument("--steps", type=int, default=20)
    s.add_argument("--seed", type=int, default=0)
    return p


def load_callable(target):
    r"""``"pkg.module:func"`` or ``"path/to/file.py:func"`` -> the function :math:`g`.

    .. math:: g : \text{case} \mapsto (g_1, \dots, g_n)
    """
    module_name, sep, func = target.rpartition(":")
    if not sep or not module_name or not func:
        raise ValueError(f"expected MODULE:FUNC (e.g. my_losses:dsm_per_example), got {target!r}")
    if module_name.endswith(".py") or os.path.sep in module_name:
        if not os.path.exists(module_name):
            raise FileNotFoundError(f"no file {module_name!r} (from {target!r})")
        spec = importlib.util.spec_from_file_location(os.path.basename(module_name)[:-3], module_name)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        sys.path.insert(0, os.getcwd())
        module = importlib.import_module(module_name)
    if not hasattr(module, func):
        raise AttributeError(f"module {module_name!r} has no function {func!r}")
    return getattr(module, func)


def main(args):
    r"""Run the parsed ``refscore conformance`` command; returns the exit status.

    .. math:: \text{status} = 0 \text{ if the report passes, else } 1
    """
    from .. import conformance

    if args.conformance_command == "export":
        paths = conformance.export(args.directory)
        print(f"wrote {len(paths)} files to {args.directory} ({len(conformance.cases())} cases; see README.md)")
        return 0
    impl = load_callable(args.target)
    if args.conformance_command == "verify":
        chosen = None if args.cases is None else conformance.load(args.cases, objective=args.objective)
        report = conformance.verify(args.objective, impl, cases=chosen, dtype=args.dtype)
    else:
        report = conformance.check_sampler(impl, args.sampler, h=args.h, d=args.d, n_chains=args.chains,
                                           n_steps=args.steps, seed=args.seed)
    print(report)
    return 0 if report.passed else 1
