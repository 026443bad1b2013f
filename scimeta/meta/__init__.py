"""Meta-learning on torch.func: MAML and relatives, physics-informed losses.

Parameters are a dict of tensors (``learner.init_params()``); the model is called
through ``torch.func.functional_call``, the inner loop is a pure function and
tasks are batched with ``vmap``::

    maml = MAML(model, inner_lr=0.01, inner_steps=5)
    params = maml.init_params()
    loss = maml.meta_loss(params, batch)      # batch: TaskBatch of [B, K, d] tensors
    loss.backward()                           # exact second-order meta-gradient
"""

from ..batch import TaskBatch as TaskBatch
from ._maml import MAML as MAML
from ._maml import RATE_PREFIX as RATE_PREFIX
from ._physics import PhysicsLoss as PhysicsLoss
from ._variants import ANIL as ANIL
from ._variants import MetaSGD as MetaSGD
from ._variants import Reptile as Reptile

__all__ = ["ANIL", "MAML", "RATE_PREFIX", "MetaSGD", "PhysicsLoss", "Reptile", "TaskBatch"]
