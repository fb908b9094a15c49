r"""Training: optimisers and :func:`fit` (:mod:`~refscore.training.train`), the extras it runs
(EMA, learning-rate schedules, evaluation; :mod:`~refscore.training.fit_extras`) and checkpoints
that resume bit for bit (:mod:`~refscore.training.checkpoint`), and gradients shared among the
host's cores (:mod:`~refscore.training.shards`).

.. math:: \theta_{k+1} = \theta_k - \eta_k\,\mathrm{Adam}(\nabla_\theta L(\theta_k))
          \qquad\text{(Kingma \& Ba 2015, Alg. 1)}
"""
from . import checkpoint, fit_extras, shards, train
from .fit_extras import cosine_schedule, ema_update
from .train import adam, cd_loss, fit, fit_cd, sgd

__all__ = ["checkpoint", "fit_extras", "shards", "train", "adam", "sgd", "fit", "cd_loss", "fit_cd", "ema_update",
           "cosine_schedule"]
