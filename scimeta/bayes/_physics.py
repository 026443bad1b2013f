"""The physics residual as a Gaussian observation block of the Laplace likelihood.

A physics-informed learner adapts on ``MSE + w·mean(r²)``, r ``[M, C_r]`` the family's
equation residual at M collocation points (divided by the loss's ``scale`` if set).
Read as a likelihood, the residual is an observation of 0 with precision λ per entry:

``log p(0 | φ) = −½ [M C_r (log 2π − log λ) + λ Σ_{m,r} r_{m,r}(φ)²]``,

which adds ``λ GGN_r = λ Σ_m J_mᵀ J_m`` (``J_m = ∂r(x_m)/∂φ`` ``[C_r, P]``) to the
posterior precision (its diagonal for ``diag``; the exact Hessian of ``½λ Σ r²`` for
``hessian``). λ is held fixed while noise and prior are fitted. With the data term
``N·C/(2σ²)`` times the MSE, the loss's weight w corresponds to
``λ = N·C·w / (σ² M C_r)``. For a residual affine in φ (a linear model and a linear
equation) the block is exact: the posterior and log Z are those of Bayesian linear
regression on the data rows and the residual rows together.
"""

from __future__ import annotations

from dataclasses import replace
from numbers import Real

import torch
from torch.func import hessian, jacrev

from ..errors import ConfigError
from ._curvature import point_chunks
from ._laplace import LOG_2PI, Posterior

#: structures the physics block supports (a dense or diagonal curvature)
PHYSICS_STRUCTURES = ("full", "diag", "last-layer", "hessian")


def physics_of(model_or_learner: object, physics: object) -> object:
    """The residual source: ``physics`` if given, else the learner's inner physics term."""
    if physics is not None:
        src = physics
    else:
        src = getattr(model_or_learner, "physics", None)
        if src is not None and hasattr(src, "applies") and not src.applies("inner"):
            src = None
    if src is None or not callable(getattr(src, "residual", None)):
        raise ConfigError("collocation_x was given but there is no physics residual: pass "
                          "physics= (an object with residual(model, params, x, task_params) "
                          "-> [M, C_r], e.g. a scimeta.meta.PhysicsLoss) or a learner with an "
                          "inner physics term")
    return src


def with_physics(post: Posterior, physics: object, collocation_x: torch.Tensor,
                 task_params: torch.Tensor | None, precision: object,
                 chunk_size: int | None) -> Posterior:
    """``post`` with the residual block at collocation_x ``[M, d_in]`` added (λ = ``precision``)."""
    if post.structure not in PHYSICS_STRUCTURES:
        raise ConfigError(f"structure={post.structure!r} is not allowed with a physics "
                          f"residual; valid: {', '.join(PHYSICS_STRUCTURES)}")
    if isinstance(precision, bool) or not isinstance(precision, Real) \
            or not 0 < float(precision) < float("inf"):
        raise ConfigError(f"physics_precision={precision!r} is not allowed; give λ > 0, the "
                          "precision of each residual entry (for a loss MSE + w·mean(r²) with "
                          "noise σ: λ = N·C·w / (σ² M C_r))")
    if not isinstance(collocation_x, torch.Tensor) or collocation_x.dim() != 2 \
            or collocation_x.shape[0] < 1:
        raise ConfigError("collocation_x must be a [M, d_in] tensor with M >= 1")
    if task_params is None or not isinstance(task_params, torch.Tensor):
        raise ConfigError("the physics residual needs task_params, the task's physical "
                          "parameters [P]")
    lam = float(precision)
    x = collocation_x.to(post.mean)
    tp = task_params.to(post.mean)

    def r(vec: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
        params = {**post.fixed, **post.flat.unflatten(vec)}
        return physics.residual(post.model, params, xs, tp)  # type: ignore[attr-defined]

    vec = post.mean
    with torch.no_grad():
        res = r(vec, x)
        if post.structure == "hessian":
            block = lam * hessian(lambda v: 0.5 * r(v, x).square().sum())(vec)
        else:
            block = None
            for s in point_chunks(x.shape[0], chunk_size):
                j = jacrev(r)(vec, x[s]).reshape(-1, vec.shape[0])     # [m·C_r, P]
                part = (j.square().sum(0) if post.structure == "diag" else j.T @ j)
                block = part if block is None else block + part
            block = lam * block
    log_lik = -0.5 * (res.numel() * (LOG_2PI - torch.log(torch.tensor(lam, dtype=vec.dtype)))
                      + lam * res.square().sum())
    return replace(post, physics_prec=block, physics_log_lik=log_lik)


__all__ = ["PHYSICS_STRUCTURES", "physics_of", "with_physics"]
