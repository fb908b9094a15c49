r"""Power and false alarms of ``refscore conformance sampler`` at its default settings (issue 33, item 4).

For every mode (mala, ula, rwmh, mh with an autoregressive proposal) this runs the correct
reference step over ``--correct`` seeds and each known fault over ``--faulty`` seeds through
:func:`refscore.conformance.check_sampler_exactness` (the statistical tests only; the exact replay
is deterministic and run once per fault), and prints a markdown table: the share of seeds on which
each test rejects at its Bonferroni level, and the share on which the whole run fails
(family-wise alpha = 0.005, the default; ``--alpha`` draws it at another level from the same
records, which hold each test's p-value). CPU seconds per run are measured too.

    .venv/bin/python tools/sampler_power.py --faulty 100 --correct 200 --jobs 2 --jsonl power.jsonl
    .venv/bin/python tools/sampler_power.py --summarize --jsonl power.jsonl     # the table again
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time

import numpy as np

from refscore.conformance.sampler_faults import faults_of_mode, reference_sampler
from refscore.conformance.sampler_replay import check_sampler_step
from refscore.conformance.sampler_stats import TESTS
from refscore.conformance.statistical import check_sampler_exactness


def ar_propose(x, h, rng, target):
    """An asymmetric MH proposal: y = 0.7 x + h z."""
    return 0.7 * x + h * rng.standard_normal(x.shape)


def ar_log_q(to, given, h, target):
    """log q(to | given) of :func:`ar_propose`, up to a constant."""
    return -np.sum((to - 0.7 * given) ** 2, 1) / (2 * h * h)


def make_step(mode, fault):
    """A fresh reference (or faulty) step in the user's interface."""
    kw = {"propose": ar_propose, "log_q": ar_log_q} if mode == "mh" else {}
    init, step = reference_sampler(mode, fault, **kw)
    if init is not None:
        step.init = init
    if mode == "mh":
        step.propose, step.log_q = ar_propose, ar_log_q
    return step


def one_run(job):
    mode, fault, seed = job
    t = time.process_time()
    report = check_sampler_exactness(make_step(mode, fault), mode, seed=seed, replay=False, alpha=1.0)
    share = 1.0 / report.level  # #tests x #targets: a row fails at family-wise alpha when share * p < alpha
    p = {test: 1.0 for test in TESTS + ("finite positions",)}
    for _, test, p_row, _, _ in report.rows:
        p[test] = min(p[test], share * p_row)
    return mode, fault, seed, p, time.process_time() - t


def faults_by_mode():
    out = {m: [None] + faults_of_mode(m) for m in ("mala", "ula", "rwmh")}
    out["mh"] = [None, "swapped proposal densities", "asymmetric proposal without its Hastings term",
                 "threshold sign", "logp_new − logp_new"]
    return out


def replay_names(mode, fault):
    report = check_sampler_step(make_step(mode, fault), mode)
    return report.passed if fault is None else (fault in report.named)


def summarize(records, alpha=0.01):
    """The markdown table from the per-run records (dicts written one a line by ``--jsonl``): each
    record holds, per test, its smallest p-value times #tests x #targets, so a test fails the run at
    family-wise ``alpha`` when that number is below ``alpha``."""
    summary, seen = {}, set()
    for rec in records:
        if (rec["mode"], rec["fault"], rec["seed"]) in seen:  # a run recorded twice (an interrupted resume)
            continue
        seen.add((rec["mode"], rec["fault"], rec["seed"]))
        row = summary.setdefault((rec["mode"], rec["fault"]), {"n": 0, "fail": 0, "cpu": [],
                                                              **{t: 0 for t in rec["p"]}})
        row["n"] += 1
        row["fail"] += min(rec["p"].values()) < alpha
        row["cpu"].append(rec["cpu"])
        for t, p in rec["p"].items():
            row[t] += p < alpha
    cols = TESTS + ("finite positions",)
    head = "| mode | step | seeds | " + " | ".join(cols) + " | any test | replay | CPU s/run |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for (mode, fault), row in summary.items():
        rep = replay_names(mode, fault)
        digits = 3 if fault is None else 2  # false alarms near 0.005 need the third digit
        cells = [f"{row[t] / row['n']:.{digits}f}" for t in cols]
        label = "correct (false alarms)" if fault is None else fault
        rep_text = ("matches reference" if rep else "MISMATCH") if fault is None else ("named" if rep else "not named")
        lines.append(f"| {mode} | {label} | {row['n']} | " + " | ".join(cells) +
                     f" | {row['fail'] / row['n']:.{digits}f} | {rep_text} | {np.mean(row['cpu']):.2f} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--faulty", type=int, default=100, help="seeds per fault")
    ap.add_argument("--correct", type=int, default=200, help="seeds per correct sampler")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--modes", default="mala,ula,rwmh,mh")
    ap.add_argument("--jsonl", default="sampler_power.jsonl", help="one record a run, appended as each finishes")
    ap.add_argument("--alpha", type=float, default=0.005,
                    help="family-wise level the table is drawn at (default 0.005, the checker's)")
    ap.add_argument("--summarize", action="store_true", help="only print the table from --jsonl")
    args = ap.parse_args(argv)
    if not args.summarize:
        table, done = faults_by_mode(), set()
        if os.path.exists(args.jsonl):  # resume: the runs already recorded are not run again
            with open(args.jsonl) as f:
                done = {(r["mode"], r["fault"], r["seed"]) for r in map(json.loads, f)}
        jobs = [(m, f, s) for m in args.modes.split(",") for f in table[m]
                for s in range(args.correct if f is None else args.faulty) if (m, f, s) not in done]
        with multiprocessing.Pool(args.jobs) as pool, open(args.jsonl, "a") as out:
            for mode, fault, seed, p, cpu in pool.imap(one_run, jobs, chunksize=2):
                out.write(json.dumps({"mode": mode, "fault": fault, "seed": seed, "p": p, "cpu": cpu}) + "\n")
                out.flush()
    with open(args.jsonl) as f:
        print(summarize((json.loads(line) for line in f), args.alpha))
    return 0


if __name__ == "__main__":
    sys.exit(main())
