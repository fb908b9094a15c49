r"""What ``refscore images mnist`` checks before any work: its arguments, scikit-learn, and the
state of ``--out``, so that one output folder never mixes two runs.

``--out`` keeps ``mnist_run.json``, the settings that determine the trained network (seed, data,
backend, architecture and training constants), written when training starts. A later run on
the same folder must have the same settings, else it is refused with the difference named
(as ``refscore sweep`` refuses a folder of another sweep). The number of steps may grow: a larger
``--steps`` extends the run from its checkpoint (as :func:`refscore.training.fit` extends a run
given a larger ``n_steps``), keeping the first run's EMA decay; a smaller one than the steps
already trained is refused. Sampling settings (``--sampler``, ``--levels``, ``--steps-each``,
``--bpd``) may change freely: they do not touch the network.

.. math:: \text{reuse}(\text{out}) \iff \text{settings}_{\text{out}} = \text{settings}_{\text{now}}
          \ \wedge\ \text{steps}_{\text{done}} \le \text{steps}_{\text{now}}
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys

from .._validation import check_nonnegative_int, check_positive_int, reading, settings_difference

__all__ = ["check_arguments", "check_splits", "run_settings", "TrainingState", "MIN_TEST", "SETTINGS_FILE"]

SETTINGS_FILE = "mnist_run.json"
#: the judge's KID compares two halves of the test split, each needing two rows (an unbiased
#: MMD² divides by n(n-1)); fewer test digits would write NaN
MIN_TEST = 4


def _count(settings, attr, flag, minimum):
    value = getattr(settings, attr, None)
    if value is None:
        return
    if minimum == 0:  # --bpd 0 is documented as "skip"; a negative count is a mistake, not a skip
        try:
            check_nonnegative_int(value, flag)
        except ValueError:
            raise ValueError(f"{flag} must be an integer >= 0 (0 skips it), got {value!r}") from None
    else:
        check_positive_int(value, flag, minimum=minimum)


def check_arguments(settings):
    r"""Refuse bad numbers of ``settings`` (an :class:`~refscore.apps.images_cli.ImagesSettings`, or
    anything with its attributes) before any work, each named with its value and rule: ``--steps`` >= 1,
    ``--levels`` >= 2, ``--steps-each`` >= 1, ``--bpd`` and ``--bpd-exact`` >= 0 (0: skip),
    ``--samples`` >= :data:`MIN_TEST` (KID compares two halves of at least two samples); and
    a missing scikit-learn (the judge's classifier), which is needed only after training.

    .. math:: \text{steps}\ge1,\ L\ge2,\ T\ge1,\ n_{bpd}\ge0,\ n_{samples}\ge4
    """
    for attr, flag, minimum in (("steps", "--steps", 1), ("levels", "--levels", 2), ("steps_each", "--steps-each", 1),
                                ("bpd", "--bpd", 0), ("bpd_exact", "--bpd-exact", 0),
                                ("samples", "--samples", MIN_TEST)):
        _count(settings, attr, flag, minimum)
    if importlib.util.find_spec("sklearn") is None:
        raise ImportError('refscore images judges its samples with a scikit-learn classifier, and scikit-learn is '
                          'not installed: pip install "refscore[data]" (checked before training)')


def check_splits(xte, ytr, source):
    r"""The loaded data can be judged: at least :data:`MIN_TEST` test digits (KID is undefined
    below) and two classes among the training labels (the classifier needs them).

    .. math:: n_{test} \ge 4,\quad |\{y^{tr}\}| \ge 2
    """
    if len(xte) < MIN_TEST:
        raise ValueError(f"the test split of {source} has {len(xte)} digit(s); judging the samples needs at least "
                         f"{MIN_TEST} (KID compares two halves of at least 2 digits each)")
    if len(set(int(v) for v in ytr)) < 2:
        raise ValueError(f"the training labels of {source} hold a single class; the judge's classifier needs two "
                         "or more")


#: the constants of ``images_cli.DEFAULTS`` that shape the trained network (the others set the
#: sampler, or the number of threads, which does not change the numbers)
TRAINING_KEYS = ("channels", "batch", "lr", "global_width", "p_median", "p_std", "shards", "film", "sigma_min")


def run_settings(settings, backend, defaults):
    r"""The settings that determine the trained network (not the sampler's, not ``--steps``,
    which may grow): of ``settings`` (an :class:`~refscore.apps.images_cli.ImagesSettings`) the
    seed and data folder (absolute; None for ``make data``'s cache), the backend's name and the
    training constants :data:`TRAINING_KEYS` of ``defaults``.

    .. math:: \text{settings} = (\text{seed}, \text{data}, \text{backend}, \text{training constants})
    """
    data = None if settings.data is None else os.path.abspath(os.fspath(settings.data))
    return {"seed": settings.seed, "data": data, "backend": backend, **{k: defaults[k] for k in TRAINING_KEYS}}


class TrainingState:
    r"""The training state of ``out``: :meth:`check` refuses other settings or fewer steps,
    :meth:`start` records the settings, :meth:`finished` says whether a trained model of this
    many steps is there, :meth:`ema` gives the decay to use (the first run's when extending).

    .. math:: \text{steps}_{\text{done}} = \text{the checkpoint's step}
    """

    def __init__(self, out, settings, steps):
        self.out, self.settings, self.steps = os.fspath(out), settings, steps
        self.settings_path = os.path.join(self.out, SETTINGS_FILE)
        self.model_path = os.path.join(self.out, "mnist_model.npz")
        self.done_path = os.path.join(self.out, "mnist_model.json")
        self.checkpoint_dir = os.path.join(self.out, "checkpoint")
        self.checkpoint_path = os.path.join(self.checkpoint_dir, "checkpoint.npz")

    def _json(self, path, what):
        with reading(path, what), open(path) as f:
            doc = json.load(f)
            if not isinstance(doc, dict):
                raise ValueError(f"it holds a {type(doc).__name__}, not an object")
        return doc

    def _saved_checkpoint(self):
        """The verified metadata of the checkpoint, or None; a corrupt one is refused in CLI terms."""
        from ..training import checkpoint

        if not os.path.exists(self.checkpoint_path):
            return None
        try:
            return checkpoint.inspect(self.checkpoint_path)
        except checkpoint.CheckpointError as e:
            raise self.refused(e) from None

    def check(self):
        r"""Refuse an ``--out`` of another run (settings differ) or of more steps than asked.

        .. math:: \text{settings}_{\text{out}} = \text{settings}_{\text{now}},\ \text{steps}_{\text{done}} \le \text{steps}
        """
        if os.path.exists(self.settings_path):
            saved = self._json(self.settings_path, f"run record of refscore images ({SETTINGS_FILE})")
            diff = settings_difference(saved, self.settings)
            if diff:
                raise ValueError(f"--out {self.out!r} holds a run with other settings ({'; '.join(diff)}); "
                                 "choose another --out, or delete that folder to start afresh")
        elif os.path.exists(self.model_path) or os.path.exists(self.checkpoint_path):
            print(f"refscore: note: {self.out} holds a run of an older refscore without {SETTINGS_FILE}: its settings "
                  "cannot be checked; this run's are recorded from now on", file=sys.stderr)
            self.start()
        meta = self._saved_checkpoint()
        done = meta["step"] if meta else 0
        if self.finished_steps() is not None:
            done = max(done, self.finished_steps())
        if done > self.steps:
            raise ValueError(f"--steps {self.steps} is fewer than the {done} steps already trained in --out "
                             f"{self.out!r}; pass --steps {done} or more (more extends the run), or another --out")
        return done

    def finished_steps(self):
        """The steps of the finished model in ``out`` (``mnist_model.json``), or None."""
        if not (os.path.exists(self.model_path) and os.path.exists(self.done_path)):
            return None
        steps = self._json(self.done_path, "record of a finished model (mnist_model.json)").get("steps")
        return steps if isinstance(steps, int) and not isinstance(steps, bool) else None

    def ema(self, default):
        """The EMA decay: the checkpoint's (a run being extended keeps its decay), else ``default``."""
        meta = self._saved_checkpoint()
        saved = (meta or {}).get("config", {}).get("ema")
        return saved if isinstance(saved, float) else default

    def start(self):
        """Record the settings (before the first training step)."""
        with open(self.settings_path, "w") as f:
            json.dump(self.settings, f, indent=1)

    def refused(self, error):
        """A checkpoint error of :func:`~refscore.training.fit` in the command's terms (it has no
        ``resume=False``): what is wrong, and delete the checkpoint folder or choose another --out."""
        from ..training import checkpoint

        what = (f"is corrupt or truncated ({error.detail})" if isinstance(error, checkpoint.CheckpointCorrupt) else
                f"belongs to another run ({error.field}: {error.saved!r} there, {error.current!r} now)"
                if isinstance(error, checkpoint.CheckpointMismatch) else f"cannot be resumed ({error})")
        return ValueError(f"checkpoint {error.path} {what}; delete {self.checkpoint_dir} to train afresh, "
                          "or choose another --out")

    def load_model(self, backend):
        """The finished :class:`~refscore.models.ConvScoreNet`; a corrupt file is named, with what to do."""
        from ..models import ConvScoreNet

        what = "saved ConvScoreNet (delete it and mnist_model.json to train again)"
        with reading(self.model_path, what):
            return ConvScoreNet.load(self.model_path, backend=backend)
