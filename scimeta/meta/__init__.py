"""Meta-learning on torch.func: MAML and relatives, physics-informed losses.

Parameters are a dict of tensors (``learner.init_params()``); the model is called
through ``torch.func.functional_call``, the inner loop is a pure function and
tasks are batched with ``vmap``::

    maml = MAML(model, inner_lr=0.01, inner_steps=5)
    params = maml.init_params()
    loss = maml.meta_loss(params, batch)      # batch: TaskBatch of [B, K, d] tensors
    loss.backward()                           # exact second-order meta-gradient

The per-task pieces are public pure methods — ``support_loss``, ``inner_loop``,
``query_loss``, ``task_meta_loss`` — with one inner-update rule
(:class:`InnerRule`) shared by the ``torch.func`` path and the hand-batched
path. Learners are declared once in a registry (:func:`get_learner`,
:func:`learner_names`); ``learner.meta_gradient(params, batch)`` gives
(loss, gradient) for every learner, Reptile's pseudo-gradient included.
"""

from ..batch import TaskBatch as TaskBatch
from ._learners import LearnerEntry as LearnerEntry
from ._learners import get_learner as get_learner
from ._learners import learner_names as learner_names
from ._learners import register_learner as register_learner
from ._maml import MAML as MAML
from ._physics import PhysicsLoss as PhysicsLoss
from ._tasks import ScaledMSE as ScaledMSE
from ._update import RATE_MODES as RATE_MODES
from ._update import RATE_PREFIX as RATE_PREFIX
from ._update import InnerLoop as InnerLoop
from ._update import InnerRule as InnerRule
from ._variants import ANIL as ANIL
from ._variants import Conditioned as Conditioned
from ._variants import Decoder as Decoder
from ._variants import Joint as Joint
from ._variants import MAMLPlusPlus as MAMLPlusPlus
from ._variants import MetaSGD as MetaSGD
from ._variants import Reptile as Reptile

__all__ = ["ANIL", "MAML", "RATE_MODES", "RATE_PREFIX", "Conditioned", "Decoder", "InnerLoop",
           "InnerRule", "Joint", "LearnerEntry", "MAMLPlusPlus", "MetaSGD", "PhysicsLoss",
           "Reptile", "ScaledMSE", "TaskBatch", "get_learner", "learner_names",
           "register_learner"]
