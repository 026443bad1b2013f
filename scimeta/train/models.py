"""Building the surrogate and the meta-learner of a training run."""

from __future__ import annotations

import logging

import torch
from torch import nn

from ..errors import ConfigError
from ..family import ProblemFamily
from ..meta import MAML, PhysicsLoss, ScaledMSE, get_learner
from ..nn import CoordinateMLP, Rescaled
from ..typing import LossFn
from .config import TrainConfig

log = logging.getLogger(__name__)


def input_periods(family: ProblemFamily, in_dim: int) -> list[float | None]:
    """The period of each input column in physical units (None: not periodic).

    Column 0 is time; a PDE family's spatial axes follow, periodic with the length of
    its domain (its grids exclude the right end); an ODE family has time only.
    """
    lengths = getattr(family, "lengths", ())
    periods: list[float | None] = [None, *(float(v) for v in lengths)]
    return (periods + [None] * in_dim)[:in_dim]


def build_model(cfg: TrainConfig, in_dim: int, out_dim: int, norm: dict | None,
                seed: int, extra_inputs: int = 0,
                periods: list[float | None] | None = None) -> nn.Module:
    """The surrogate: a CoordinateMLP, wrapped in :class:`Rescaled` when normalizing.

    ``norm`` holds ``lo``, ``hi`` (inputs) and ``y_shift``, ``y_scale`` (outputs),
    computed once from the training store and saved with the run. ``extra_inputs``
    columns follow the ``in_dim`` coordinates (the parameter-conditioned baseline's
    task parameters, already scaled to [-1, 1] by its batches): the network takes
    ``[..., in_dim + extra_inputs]`` and their input box is [-1, 1], the identity.
    ``periods`` (run.json ``periods``, :func:`input_periods`) is needed when
    ``model.periodic_modes > 0``; they are converted to the units the network sees.
    """
    m = cfg.model
    n_in = in_dim + extra_inputs
    rescale = m.normalize != "none" and norm is not None
    both = rescale and m.normalize == "both"
    seen = None
    if m.periodic_modes:
        if periods is None:
            raise ConfigError("model.periodic_modes needs the run's input periods "
                              "(run.json 'periods'), which this run does not record")
        seen = [None if per is None else
                per * (2.0 / (norm["hi"][c] - norm["lo"][c]) if both else 1.0)  # type: ignore[index]
                for c, per in enumerate(periods[:in_dim])] + [None] * extra_inputs
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = CoordinateMLP(n_in, out_dim, hidden=m.hidden, activation=m.activation,
                            fourier_features=m.fourier_features, fourier_scale=m.fourier_scale,
                            periods=seen, periodic_modes=m.periodic_modes,
                            context_dim=m.context_dim)
    if rescale:
        assert norm is not None
        lo, hi = ([*norm["lo"], *[-1.0] * extra_inputs], [*norm["hi"], *[1.0] * extra_inputs]
                  ) if both else ([-1.0] * n_in, [1.0] * n_in)  # identity
        return Rescaled(net, lo, hi, norm["y_shift"], norm["y_scale"])
    return net


def scaled_mse(model: nn.Module) -> LossFn:
    """MSE in units of each channel's spread: mean(((pred − y) / y_scale)²)
    (:class:`~scimeta.meta.ScaledMSE`, which the hand-batched paths recognise).

    With output normalization the loss (and so the inner loop's curvature, which
    bounds the stable inner rate) no longer depends on the family's units.
    """
    return ScaledMSE(model)


def physics_scale(cfg: TrainConfig, norm: dict | None) -> list[float] | None:
    """The residual's per-channel unit ``[C]`` (run.json ``norm.dydt_scale``) when
    ``meta.physics_normalize``; None when off or for a run saved without it (then
    the residual stays in the family's units)."""
    if not cfg.meta.physics_normalize or not norm:
        return None
    return norm.get("dydt_scale")


def build_learner(cfg: TrainConfig, model: nn.Module, family: ProblemFamily | None,
                  algorithm: str | None = None, loss: str | LossFn = "mse", *,
                  norm: dict | None = None, physics_weight: float | None = None,
                  extra_inputs: int = 0) -> MAML:
    """The registered learner named ``algorithm`` (default: the config's ``meta.algorithm``).

    ``loss`` is ``"mse"`` or a callable ``(pred, target) -> scalar``; a model
    wrapped in :class:`Rescaled` (``model.normalize`` not ``"none"``), or any model
    with a tensor ``y_scale`` (:class:`~.decoder.CodedField`), is trained on
    :func:`scaled_mse` unless another callable is given. The physics term is
    added when ``meta.physics_weight > 0`` and a family is given, its residual divided
    by :func:`physics_scale` of the run's ``norm``. ``physics_weight`` (a number >= 0)
    overrides the config's weight and puts the term in the inner (adaptation) loss
    only: test-time physics-informed adaptation. ``extra_inputs``: the model's input
    columns after the coordinates (:func:`build_model`), carried by the physics term.
    """
    if loss == "mse" and isinstance(getattr(model, "y_scale", None), torch.Tensor):
        loss = scaled_mse(model)  # a Rescaled model, or one that exposes its output spread
    mc = cfg.meta
    entry = get_learner(algorithm or mc.algorithm)
    weight, where = ((mc.physics_weight, mc.physics_where) if physics_weight is None
                     else (physics_weight, "inner"))
    physics = None
    if weight > 0 and family is not None:
        physics = PhysicsLoss(family, weight=weight, where=where,
                              scale=physics_scale(cfg, norm), extra_inputs=extra_inputs)
    kw = {"inner_lr": mc.inner_lr, "inner_steps": mc.inner_steps,
          "chunk_size": mc.chunk_size or None, "physics": physics, "loss": loss,
          "inner_grad_clip": mc.inner_grad_clip}
    if mc.compile:
        try:
            return entry.build(model, compile=True, **kw)
        except ConfigError as exc:
            log.warning("meta.compile: %s trains eagerly (%s)", entry.name, exc)
    return entry.build(model, **kw)
