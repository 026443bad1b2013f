"""Building the surrogate and the meta-learner of a training run."""

from __future__ import annotations

import torch
from torch import nn

from ..family import ProblemFamily
from ..meta import MAML, PhysicsLoss, get_learner
from ..nn import CoordinateMLP, Rescaled
from ..typing import LossFn
from .config import TrainConfig


def build_model(cfg: TrainConfig, in_dim: int, out_dim: int, norm: dict | None,
                seed: int) -> nn.Module:
    """The surrogate: a CoordinateMLP, wrapped in :class:`Rescaled` when normalizing.

    ``norm`` holds ``lo``, ``hi`` (inputs) and ``y_shift``, ``y_scale`` (outputs),
    computed once from the training store and saved with the run.
    """
    m = cfg.model
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = CoordinateMLP(in_dim, out_dim, hidden=m.hidden, activation=m.activation,
                            fourier_features=m.fourier_features, fourier_scale=m.fourier_scale)
    if m.normalize != "none" and norm is not None:
        lo, hi = (norm["lo"], norm["hi"]) if m.normalize == "both" else (
            [-1.0] * in_dim, [1.0] * in_dim)  # the identity map
        return Rescaled(net, lo, hi, norm["y_shift"], norm["y_scale"])
    return net


def scaled_mse(model: Rescaled) -> LossFn:
    """MSE in units of each channel's spread: mean(((pred − y) / y_scale)²).

    With output normalization the loss (and so the inner loop's curvature, which
    bounds the stable inner rate) no longer depends on the family's units.
    """

    def loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ((pred - target) / model.y_scale).square().mean()

    return loss


def build_learner(cfg: TrainConfig, model: nn.Module, family: ProblemFamily | None,
                  algorithm: str | None = None, loss: str | LossFn = "mse") -> MAML:
    """The registered learner named ``algorithm`` (default: the config's ``meta.algorithm``).

    ``loss`` is ``"mse"`` or a callable ``(pred, target) -> scalar``; a model
    wrapped in :class:`Rescaled` (``model.normalize`` not ``"none"``) is trained on
    :func:`scaled_mse` unless another callable is given. The physics term is
    added when ``meta.physics_weight > 0`` and a family is given.
    """
    if loss == "mse" and isinstance(model, Rescaled):
        loss = scaled_mse(model)
    mc = cfg.meta
    entry = get_learner(algorithm or mc.algorithm)
    physics = None
    if mc.physics_weight > 0 and family is not None:
        physics = PhysicsLoss(family, weight=mc.physics_weight, where=mc.physics_where)
    return entry.build(model, inner_lr=mc.inner_lr, inner_steps=mc.inner_steps,
                       chunk_size=mc.chunk_size or None, physics=physics, loss=loss)
