"""Fitting a Laplace posterior around an adapted φ: :func:`fit_laplace`.

The curvature (:mod:`._curvature`), the prior (:mod:`._prior`), the optional physics
block (:mod:`._physics`) and the positive-definiteness check with optional jitter; the
result is a :class:`~._laplace.Posterior`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace

import torch
from torch import nn

from ..errors import ConfigError
from ..typing import ParamsLike
from ._curvature import check_structure, curvature, model_fn, noise_variance
from ._flat import Flat, split_params
from ._kron import not_pd_message
from ._laplace import Posterior
from ._prior import make_prior

log = logging.getLogger(__name__)


def _unwrap(model_or_learner) -> tuple[nn.Module, list[str] | None]:
    if isinstance(model_or_learner, nn.Module):
        return model_or_learner, None
    model = getattr(model_or_learner, "model", None)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model={type(model_or_learner).__name__} is not allowed; give an "
                          "nn.Module or a scimeta.meta learner")
    return model, list(getattr(model_or_learner, "adapted", None) or []) or None


def _check_jitter(jitter: object) -> float:
    if isinstance(jitter, bool) or not isinstance(jitter, (int, float)) or not jitter >= 0:
        raise ConfigError(f"jitter={jitter!r} is not allowed; it must be a number >= 0")
    return float(jitter)


def fit_laplace(model, params: ParamsLike, x: torch.Tensor, y: torch.Tensor, *,
                prior_mean: ParamsLike | None = None, structure: str = "kron",
                prior_precision: object = 1.0, noise_std: object = 1.0,
                names: Iterable[str] | None = None, chunk_size: int | None = None,
                optimize: str | None = None, jitter: float = 0.0,
                collocation_x: torch.Tensor | None = None,
                task_params: torch.Tensor | None = None, physics: object = None,
                physics_precision: object = None) -> Posterior:
    """Laplace posterior around φ = ``params`` (the mode) on x ``[N, d_in]``, y ``[N, C]``.

    ``model``: an ``nn.Module`` or a :mod:`scimeta.meta` learner (its model; ``names``
    then defaults to the adapted parameters). ``prior_mean``: θ (the meta-learned init;
    default zeros). ``structure``: one of :data:`STRUCTURES`. ``prior_precision``: see
    :mod:`._prior`. ``noise_std``: σ, a number (one shared, fitted shared) or ``[C]``.
    ``optimize``: None (keep the given values), ``"prior"``, ``"noise"`` or ``"both"``.

    With ``collocation_x`` ``[M, d_in]`` (and ``task_params`` ``[P]``) the physics residual
    of ``physics`` (default: the learner's inner physics term) is an observation of 0
    with precision ``physics_precision`` λ per entry: see :mod:`._physics`.

    If the precision is not positive definite: with ``jitter == 0`` (default) a
    ConfigError telling to raise the prior precision; with ``jitter > 0``, jitter·I is
    added (×10 until it is, at most 8 times) and a warning is logged.
    """
    source = model
    model, learner_names = _unwrap(model)
    structure = check_structure(structure)
    jitter = _check_jitter(jitter)
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor) or x.dim() != 2 \
            or y.dim() != 2 or x.shape[0] != y.shape[0] or x.shape[0] < 1:
        raise ConfigError("x must be [N, d_in] and y [N, C] tensors with the same N >= 1")
    names = learner_names if names is None else names
    params = {k: v.detach() for k, v in params.items()}
    with torch.no_grad():
        curv = curvature(model, params, x, y, structure=structure, names=names,
                         chunk_size=chunk_size, per_channel=True)
    if structure == "last-layer":
        from ._curvature import last_layer_names
        names = last_layer_names(model, x[:1], names)
    flat = Flat.of_model(model, names)
    fixed = split_params(params, flat, model)
    mean = flat.flatten(params)
    theta = torch.zeros_like(mean) if prior_mean is None else \
        flat.flatten({k: v.detach() for k, v in prior_mean.items()}).to(mean)
    with torch.no_grad():
        pred = model_fn(model, fixed, flat)(mean, x)
    if pred.shape != y.shape:
        raise ConfigError(f"the model output {tuple(pred.shape)} does not match y {tuple(y.shape)}")
    prior = make_prior(prior_precision, flat, mean)
    if structure == "diag" and not prior.is_diagonal:
        raise ConfigError("structure='diag' needs a diagonal prior precision (a number, a "
                          "per-tensor dict or a [P] vector), not a [P, P] matrix")
    if structure == "kron" and not prior.is_diagonal:
        raise ConfigError("structure='kron' needs a number or per-tensor prior precision")
    shared = torch.as_tensor(noise_std).dim() == 0
    post = Posterior(model, structure, flat, fixed, mean, theta, prior,
                     noise_variance(noise_std, y.shape[1], mean), shared,
                     curv, x.shape[0],
                     (y - pred).square().sum(0), 0.0)
    if collocation_x is not None:
        from ._physics import physics_of, with_physics
        post = with_physics(post, physics_of(source, physics), collocation_x, task_params,
                            physics_precision, chunk_size)
    post = _ensure_pd(post, jitter)
    if optimize is not None:
        post = _ensure_pd(post.optimize(optimize), jitter)
    return post


def _ensure_pd(post: Posterior, jitter: float) -> Posterior:
    try:
        post._logdet(post.noise_var, None)
        return post
    except ConfigError:
        if jitter <= 0:
            raise
    for k in range(8):
        j = jitter * 10.0 ** k
        cand = replace(post, jitter=j)
        try:
            cand._logdet(cand.noise_var, None)
        except ConfigError:
            continue
        log.warning("laplace: the posterior precision (structure=%r) was not positive "
                    "definite; added jitter %.3g·I", post.structure, j)
        return cand
    raise ConfigError(not_pd_message(post.structure, post._tau_hint())
                      + f"; jitter up to {j:g} was not enough")


__all__ = ["fit_laplace"]
