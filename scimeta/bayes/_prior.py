"""Gaussian priors N(θ, Λ⁻¹) over the flat parameter vector, and the early-stopping prior.

Λ (the prior precision, units 1/(units of φ)²) is given as

- a number τ >= 0: ``Λ = τ I`` (one scale to fit);
- a dict ``{name: τ_name}`` with one number per parameter tensor (one scale each);
- a ``[P]`` vector (a diagonal Λ) or a ``[P, P]`` symmetric matrix (one global scale),
  e.g. from :func:`prior_from_inner_loop`.

Evidence maximisation multiplies each group by ``exp(log_scale[group])``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Real
from typing import Any

import torch
from torch.func import hessian

from ..errors import ConfigError
from ..typing import ParamsLike
from ._flat import Flat, split_params


@dataclass(frozen=True)
class Prior:
    """A prior precision over P flat entries: ``value`` ``[P]`` (diagonal) or ``[P, P]``.

    ``groups`` ``[P]`` assigns each entry to one of ``n_groups`` scales; ``kind`` is
    ``"scalar"``, ``"per-tensor"``, ``"vector"`` or ``"matrix"``.
    """

    value: torch.Tensor
    groups: torch.Tensor
    n_groups: int
    kind: str

    @property
    def is_diagonal(self) -> bool:
        return self.value.dim() == 1

    def scaled(self, log_scale: torch.Tensor | None = None) -> torch.Tensor:
        """Λ with group scales ``exp(log_scale)`` ``[n_groups]`` applied (``[P]`` or ``[P, P]``)."""
        if log_scale is None:
            return self.value
        if self.is_diagonal:
            return self.value * torch.exp(log_scale)[self.groups]
        return self.value * torch.exp(log_scale[0])

    def rescaled(self, log_scale: torch.Tensor) -> Prior:
        """A new prior with the scales folded in (detached)."""
        return Prior(self.scaled(log_scale).detach(), self.groups, self.n_groups, self.kind)

    def logdet(self, log_scale: torch.Tensor | None = None) -> torch.Tensor:
        """log det Λ; a ConfigError when Λ is not positive definite (improper prior)."""
        lam = self.scaled(log_scale)
        if self.is_diagonal:
            if not bool(torch.all(lam > 0)):
                raise ConfigError("the evidence needs a proper prior: prior_precision has "
                                  "entries <= 0; give prior_precision > 0")
            return torch.log(lam).sum()
        chol, info = torch.linalg.cholesky_ex(lam)
        if int(info) > 0:
            raise ConfigError("the evidence needs a proper prior: the prior precision matrix "
                              "is not positive definite; pass min_precision > 0 to "
                              "prior_from_inner_loop or give prior_precision > 0")
        return 2.0 * torch.log(torch.diagonal(chol)).sum()

    def quad(self, delta: torch.Tensor, log_scale: torch.Tensor | None = None) -> torch.Tensor:
        """``δᵀ Λ δ`` for δ ``[P]``."""
        lam = self.scaled(log_scale)
        if self.is_diagonal:
            return (lam * delta.square()).sum()
        return delta @ lam @ delta

    def dense(self) -> torch.Tensor:
        """Λ as a ``[P, P]`` matrix."""
        return torch.diag(self.value) if self.is_diagonal else self.value


def _nonneg(name: str, v: object) -> float:
    if isinstance(v, bool) or not isinstance(v, (Real, torch.Tensor)):
        raise ConfigError(f"{name}={v!r} is not allowed; it must be a number >= 0")
    f = float(v)
    if not (f >= 0 and f < float("inf")):
        raise ConfigError(f"{name}={v!r} is not allowed; it must be a finite number >= 0")
    return f


def make_prior(prior_precision: object, flat: Flat, like: torch.Tensor) -> Prior:
    """Normalise a user's ``prior_precision`` to a :class:`Prior` over ``flat``."""
    opts: dict[str, Any] = {"dtype": like.dtype, "device": like.device}
    P = flat.numel
    zeros = torch.zeros(P, dtype=torch.long, device=like.device)
    if isinstance(prior_precision, Mapping):
        missing = [n for n in flat.names if n not in prior_precision]
        if missing:
            raise ConfigError(f"prior_precision lacks {missing}; give one number per "
                              f"parameter tensor: {', '.join(flat.names)}")
        vals = [_nonneg(f"prior_precision[{n!r}]", prior_precision[n]) for n in flat.names]
        groups = flat.group_index().to(like.device)
        value = torch.tensor(vals, **opts)[groups]
        return Prior(value, groups, len(flat.names), "per-tensor")
    if isinstance(prior_precision, torch.Tensor) and prior_precision.dim() > 0:
        t = prior_precision.detach().to(**opts)
        if t.shape == (P,) and bool(torch.all(t >= 0)) and bool(torch.isfinite(t).all()):
            return Prior(t, zeros, 1, "vector")
        if t.shape == (P, P) and bool(torch.isfinite(t).all()):
            if not torch.allclose(t, t.T, rtol=1e-10, atol=1e-12 * float(t.abs().max())):
                raise ConfigError("prior_precision matrix is not symmetric")
            return Prior(0.5 * (t + t.T), zeros, 1, "matrix")
        raise ConfigError(f"prior_precision of shape {tuple(t.shape)} is not allowed; give a "
                          f"number >= 0, a dict with one number per parameter tensor, a [P] "
                          f"vector >= 0 or a symmetric [P, P] matrix (P={P})")
    tau = _nonneg("prior_precision", prior_precision)
    return Prior(torch.full((P,), tau, **opts), zeros, 1, "scalar")


def prior_from_inner_loop(H: torch.Tensor, inner_lr: float, inner_steps: int, *,
                          loss_scale: float = 1.0, min_precision: float = 0.0) -> torch.Tensor:
    """Prior precision ``[P, P]`` implied by K gradient steps of size β from θ.

    On a quadratic loss ``L(φ) = ½(φ − φ*)ᵀ H (φ − φ*)`` (H ``[P, P]``, ``H = O diag(λ) Oᵀ``),
    K steps of size β from θ land on the MAP of ``L(φ) + ½(φ − θ)ᵀ Q⁻¹ (φ − θ)`` with
    ``Q = O diag(λ⁻¹((1 − βλ)^{−K} − 1)) Oᵀ`` (Santos 1996; Grant et al. 2018). Returned:
    ``loss_scale · Q⁻¹``, the precision to use when the negative log-likelihood equals
    ``loss_scale · L`` (MSE mean over N points and C channels with noise σ: N·C/(2σ²)).

    Per eigenvalue the precision is ``λ / ((1 − βλ)^{−K} − 1)``. Rules:

    - ``βλ < 1`` (λ < 0 included): that formula, which reproduces the K-step iterate
      exactly; at ``λ = 0`` its limit ``1/(Kβ)``;
    - ``βλ >= 1``: the step reaches or overshoots the minimum along that direction (the
      precision tends to 0 as βλ → 1⁻); no Gaussian prior centred on θ gives the
      oscillating iterate, so the precision there is ``min_precision`` (default 0: flat).
    """
    if not isinstance(H, torch.Tensor) or H.dim() != 2 or H.shape[0] != H.shape[1]:
        raise ConfigError("H must be a square [P, P] tensor (the Hessian of the inner loss)")
    beta = _nonneg("inner_lr", inner_lr)
    if beta <= 0:
        raise ConfigError(f"inner_lr={inner_lr!r} is not allowed; it must be > 0")
    if isinstance(inner_steps, bool) or not isinstance(inner_steps, int) or inner_steps < 1:
        raise ConfigError(f"inner_steps={inner_steps!r} is not allowed; it must be an int >= 1 "
                          "(no step means a point-mass prior)")
    scale = _nonneg("loss_scale", loss_scale)
    floor = _nonneg("min_precision", min_precision)
    lam, vecs = torch.linalg.eigh(0.5 * (H + H.T))
    bl = beta * lam
    ok = bl < 1
    tiny = ok & (bl.abs() < 1e-12)
    regular = ok & ~tiny
    safe = torch.where(regular, bl, torch.full_like(bl, -1.0))
    p = torch.where(regular, lam / torch.expm1(-inner_steps * torch.log1p(-safe)),
                    torch.full_like(lam, 1.0 / (inner_steps * beta)))
    p = torch.where(ok, scale * p, torch.full_like(lam, floor))
    out = (vecs * p) @ vecs.T
    return 0.5 * (out + out.T)


def inner_loop_prior(learner, theta: ParamsLike, support_x: torch.Tensor,
                     support_y: torch.Tensor, *, noise_std: float | None = None,
                     loss_scale: float | None = None, min_precision: float = 0.0,
                     collocation_x: torch.Tensor | None = None,
                     task_params: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`prior_from_inner_loop` for a MAML learner at its init θ on one task.

    H is the exact Hessian of ``learner.support_loss`` at θ over the adapted parameters
    (``learner.adapted``, flat in model order, as :func:`fit_laplace` uses them); β and K
    are ``learner.inner_lr`` and ``learner.inner_steps``. ``loss_scale`` defaults to
    N·C/(2σ²) for the MSE loss with one noise scale ``noise_std`` σ (support_y ``[N, C]``).
    """
    if getattr(learner, "rate_mode", "fixed") != "fixed":
        raise ConfigError(f"inner_loop_prior needs plain gradient steps of one fixed rate; "
                          f"{type(learner).__name__} learns its rates")
    if loss_scale is None:
        physics = getattr(learner, "physics", None)
        if learner.loss != "mse" or (physics is not None and physics.applies("inner")):
            raise ConfigError("loss_scale is needed unless the support loss is plain MSE")
        if noise_std is None:
            raise ConfigError("give noise_std (σ, one number) or loss_scale")
        sigma = _nonneg("noise_std", noise_std)
        if sigma <= 0:
            raise ConfigError(f"noise_std={noise_std!r} is not allowed; it must be > 0")
        loss_scale = support_y.shape[0] * support_y.shape[1] / (2.0 * sigma ** 2)
    flat = Flat.of_model(learner.model, learner.adapted)
    fixed = {k: v.detach() for k, v in split_params(theta, flat, learner.model).items()}

    def loss(vec: torch.Tensor) -> torch.Tensor:
        return learner.support_loss({**fixed, **flat.unflatten(vec)}, support_x, support_y,
                                    collocation_x, task_params)

    H = hessian(loss)(flat.flatten(theta).detach())
    return prior_from_inner_loop(H, learner.inner_lr, learner.inner_steps,
                                 loss_scale=loss_scale, min_precision=min_precision)


__all__ = ["Prior", "inner_loop_prior", "make_prior", "prior_from_inner_loop"]
