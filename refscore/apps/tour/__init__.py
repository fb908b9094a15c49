r"""``refscore tour``: the lecture notes end to end, with pictures — figures (PNG), ``report.md``
and a self-contained ``report.html`` in ``--out``, plus the generated samples
``ncsn_2d_samples.npy`` (n, 2) and ``digits_samples.npy`` (64, 64).

One function per section, in lecture order (:data:`SECTIONS`); each writes under its own heading
through a shared :class:`~refscore.apps.tour.context.TourContext`, and asks the context for the
trained models it shows, so what is computed first can never move a figure:

1. an EBM and why Z is hard · 2. the score · 3. the score matching objectives · 4. denoising at
many noise scales (NCSN) · 5. Tweedie · 6. sampling · 7. the open questions of ``004_…`` ·
8. the reverse SDE, the probability-flow ODE and likelihoods · 9. images (8×8 digits).
"""
from __future__ import annotations

import json
import os
import time

from ... import backends
from ..report import Report
from .basics import ebm_section, noise_scales_section, objectives_section, score_section
from ..digits_common import one_blas_thread
from .context import TourContext
from .diffusion import diffusion_section, questions_section
from .images import images_section
from .sampling import sampling_section, tweedie_section

__all__ = ["run_tour", "SECTIONS", "TourContext"]

SECTIONS = (ebm_section, score_section, objectives_section, noise_scales_section, tweedie_section,
            sampling_section, questions_section, diffusion_section, images_section)


def run_tour(backend=None, seed=0, out="tour-output", quick=False, sections=SECTIONS):
    r"""Run the tour's ``sections`` in order and write the report to ``out``.

    .. math:: \text{report} = \text{section}_1 \,\|\, \text{section}_2 \,\|\,\cdots\,\|\, \text{section}_9

    Returns 0 (the command's exit status). The headline numbers (sliced W2 of the NCSN samples,
    the digits' quality measures, CPU times) are also written to ``results.json`` in ``out``.
    """
    import matplotlib

    matplotlib.use("Agg")
    bk = backends.get(backend)
    report = Report(out, f"refscore tour (backend {bk.name}, seed {seed}{', quick' if quick else ''})")
    ctx = TourContext(bk, seed, quick, report, out)
    with one_blas_thread():
        for i, section in enumerate(sections, 1):
            ctx.log(f"{i}/{len(sections)} {section.__name__.removesuffix('_section').replace('_', ' ')}")
            section(ctx)
    report.text(f"Tour time: {time.perf_counter() - ctx.t_start:.1f} s wall, {time.process_time() - ctx.cpu_start:.1f} s "
                f"CPU (this process) on backend {bk.name}.")
    report.write()
    ctx.results["cpu_s"] = time.process_time() - ctx.cpu_start
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(ctx.results, f, indent=1)
    ctx.log(f"done: {os.path.join(out, 'report.html')}")
    return 0
