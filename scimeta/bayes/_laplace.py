"""Laplace posteriors around an adapted φ, with the meta-learned θ as the prior mean.

Model: ``y[n, c] ~ N(f(x_n; φ)[c], σ_c²)``, prior ``φ ~ N(θ, Λ⁻¹)``. The posterior is
``N(φ, (GGN + Λ + jitter·I)⁻¹)`` with the curvature of :mod:`._curvature` in the chosen
structure; the given φ is taken as the mode. The Laplace log marginal likelihood is

``log Z = log p(y | φ) + log p(φ) + (P/2) log 2π − ½ log det(GGN + Λ)``,

exact for a linear-Gaussian model at its MAP. Noise and prior precision can be fitted
by maximising log Z over their logarithms with L-BFGS (φ and the curvature at unit
noise held fixed): see :meth:`Posterior.optimize`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..typing import Params
from ._flat import Flat
from ._kron import KronSqrt, kron_logdet, not_pd_message
from ._prior import Prior
from ._sqrt import DenseSqrt, DiagSqrt

log = logging.getLogger(__name__)
LOG_2PI = math.log(2.0 * math.pi)
#: what :meth:`Posterior.optimize` / ``fit_laplace(optimize=...)`` may fit
OPTIMIZE = ("prior", "noise", "both")


@dataclass(frozen=True)
class Posterior:
    """A Laplace posterior ``N(mean, precision⁻¹)`` over the flat vector ``flat`` (P entries).

    ``curv`` is the unit-noise curvature per output channel (``[C, P, P]``, ``[C, P]``
    for ``diag``, :class:`KronFactors` for ``kron``); ``noise_var`` σ_c² ``[C]``;
    ``sq_residual`` ``Σ_n (y − f(x_n; φ))²`` per channel ``[C]`` over ``n_points``.
    Parameters not in ``flat`` are held at ``fixed``. ``physics_prec`` (``[P, P]``, ``[P]``
    for diag) and ``physics_log_lik``: a fixed physics-residual observation block
    (:mod:`._physics`), added to the precision and to ``log p(y | φ)``.
    """

    model: nn.Module
    structure: str
    flat: Flat
    fixed: Params
    mean: torch.Tensor
    prior_mean: torch.Tensor
    prior: Prior
    noise_var: torch.Tensor
    shared_noise: bool
    curv: Any  # [C, P] (diag), [C, P, P] (dense) or KronFactors
    n_points: int
    sq_residual: torch.Tensor
    jitter: float = 0.0
    physics_prec: Any = None
    physics_log_lik: Any = 0.0

    # ---- structure-specific pieces ---------------------------------------
    @property
    def noise_std(self) -> torch.Tensor:
        """σ_c ``[C]`` (units of y)."""
        return self.noise_var.sqrt()

    @property
    def prior_precision(self) -> torch.Tensor:
        """Λ: ``[P]`` (diagonal) or ``[P, P]``."""
        return self.prior.value

    @property
    def params(self) -> Params:
        """The mode φ as a full model parameter dict (fixed entries included)."""
        return {**self.fixed, **self.flat.unflatten(self.mean)}

    def _tau_hint(self) -> float | None:
        """The prior precision for error messages, when it is one number."""
        return float(self.prior.value[0]) if self.prior.kind == "scalar" else None

    def _precision(self, noise_var: torch.Tensor, log_scale: torch.Tensor | None):
        """GGN(σ) + Λ + jitter·I: ``[P, P]`` (``[P]`` for diag; None for kron)."""
        if self.structure == "kron":
            return None
        lam = self.prior.scaled(log_scale)
        extra = 0.0 if self.physics_prec is None else self.physics_prec
        if self.structure == "diag":
            return torch.einsum("c,cp->p", 1.0 / noise_var, self.curv) + lam + self.jitter + extra
        prec = torch.einsum("c,cpq->pq", 1.0 / noise_var, self.curv) + extra
        eye = torch.eye(prec.shape[0], dtype=prec.dtype, device=prec.device)
        return prec + (lam if lam.dim() == 2 else torch.diag(lam)) + self.jitter * eye

    def _logdet(self, noise_var: torch.Tensor, log_scale: torch.Tensor | None) -> torch.Tensor:
        if self.structure == "kron":
            factors = self.curv.with_noise(noise_var)
            return kron_logdet(factors, self.prior.scaled(log_scale), self.jitter)
        prec = self._precision(noise_var, log_scale)
        if self.structure == "diag":
            if not bool(torch.all(prec > 0)):
                raise ConfigError(not_pd_message("diag", self._tau_hint()))
            return torch.log(prec).sum()
        chol, info = torch.linalg.cholesky_ex(prec)
        if int(info) > 0:
            raise ConfigError(not_pd_message(self.structure, self._tau_hint()))
        return 2.0 * torch.log(torch.diagonal(chol)).sum()

    def sqrt_covariance(self) -> DenseSqrt | DiagSqrt | KronSqrt:
        """A factor with ``n_rows`` and ``chunks(k)``: row blocks T, ``Σ = Tᵀ T``."""
        if self.structure == "kron":
            return KronSqrt(self.curv.with_noise(self.noise_var), self.prior.value, self.jitter)
        prec = self._precision(self.noise_var, None)
        if self.structure == "diag":
            if not bool(torch.all(prec > 0)):
                raise ConfigError(not_pd_message("diag", self._tau_hint()))
            return DiagSqrt(prec)
        return DenseSqrt(prec, not_pd_message(self.structure, self._tau_hint()))

    # ---- dense views (small P) -------------------------------------------
    def ggn(self) -> torch.Tensor:
        """The curvature at the current noise, dense ``[P, P]``."""
        if self.structure == "kron":
            return self.curv.with_noise(self.noise_var).to_dense()
        c = torch.einsum("c,c...->...", 1.0 / self.noise_var, self.curv)
        return torch.diag(c) if self.structure == "diag" else c

    def precision(self) -> torch.Tensor:
        """Posterior precision ``GGN + Λ + jitter·I``, dense ``[P, P]``."""
        if self.structure == "kron":
            eye = torch.eye(self.flat.numel, dtype=self.mean.dtype, device=self.mean.device)
            return self.ggn() + self.prior.dense() + self.jitter * eye
        prec = self._precision(self.noise_var, None)
        return torch.diag(prec) if self.structure == "diag" else prec

    def covariance(self) -> torch.Tensor:
        """Posterior covariance ``[P, P]`` (dense; for small P)."""
        if self.structure == "diag":
            return torch.diag(1.0 / self._precision(self.noise_var, None))
        return torch.cholesky_inverse(torch.linalg.cholesky(self.precision()))

    # ---- evidence --------------------------------------------------------
    def log_likelihood(self, noise_var: torch.Tensor | None = None) -> torch.Tensor:
        """``log p(y | φ)`` (nats) of the fitted data (and of the physics block, if any)."""
        s2 = self.noise_var if noise_var is None else noise_var
        return (-0.5 * (self.n_points * (LOG_2PI + torch.log(s2)) + self.sq_residual / s2).sum()
                + self.physics_log_lik)

    def log_prior(self, log_scale: torch.Tensor | None = None) -> torch.Tensor:
        """``log N(φ; θ, Λ⁻¹)`` (nats)."""
        d = self.mean - self.prior_mean
        P = self.flat.numel
        return 0.5 * (-P * LOG_2PI + self.prior.logdet(log_scale) - self.prior.quad(d, log_scale))

    def log_marginal_likelihood(self, noise_var: torch.Tensor | None = None,
                                log_scale: torch.Tensor | None = None) -> torch.Tensor:
        """Laplace ``log p(y)`` (nats); differentiable in ``noise_var`` and ``log_scale``."""
        s2 = self.noise_var if noise_var is None else noise_var
        return (self.log_likelihood(s2) + self.log_prior(log_scale)
                + 0.5 * self.flat.numel * LOG_2PI - 0.5 * self._logdet(s2, log_scale))

    def optimize(self, fit: str = "both", *, max_iter: int = 200) -> Posterior:
        """A posterior with the noise and/or prior scales that maximise log Z.

        ``fit``: ``"prior"`` (one log-scale per prior group: 1 for a number/vector/matrix,
        one per tensor for a dict), ``"noise"`` (log σ, shared or per channel as given)
        or ``"both"``. L-BFGS with strong-Wolfe line search on the log-parameters;
        φ and the unit-noise curvature stay fixed.
        """
        if fit not in OPTIMIZE:
            raise ConfigError(f"optimize={fit!r} is not allowed; use one of "
                              f"{', '.join(OPTIMIZE)} or None")
        ls = torch.zeros(self.prior.n_groups, dtype=self.mean.dtype, device=self.mean.device)
        log_sig = 0.5 * torch.log(self.noise_var[:1] if self.shared_noise else self.noise_var)
        ls.requires_grad_(fit in ("prior", "both"))
        log_sig = log_sig.clone().requires_grad_(fit in ("noise", "both"))
        leaves = [t for t in (ls, log_sig) if t.requires_grad]
        opt = torch.optim.LBFGS(leaves, lr=1.0, max_iter=max_iter, tolerance_grad=1e-10,
                                tolerance_change=1e-14, line_search_fn="strong_wolfe")

        def s2_of(ls_: torch.Tensor) -> torch.Tensor:
            return torch.exp(2 * ls_).expand_as(self.noise_var)

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = -self.log_marginal_likelihood(s2_of(log_sig), ls)
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(closure)
        out = replace(self, noise_var=s2_of(log_sig).detach().clone(),
                      prior=self.prior.rescaled(ls.detach()))
        log.info("laplace: optimised %s; log Z %.6g", fit, float(out.log_marginal_likelihood()))
        return out

    # ---- prediction ------------------------------------------------------
    def predict(self, x: torch.Tensor, *, chunk_size: int = 256):
        """Linearized predictive at x ``[N, d_in]``: see :func:`scimeta.bayes.predict`."""
        from ._predictive import predict
        return predict(self, x, chunk_size=chunk_size)

    def sample(self, n: int, *, generator: torch.Generator | None = None,
               chunk_size: int = 256) -> Params:
        """``n`` posterior parameter draws: see :func:`scimeta.bayes.sample_params`."""
        from ._predictive import sample_params
        return sample_params(self, n, generator=generator, chunk_size=chunk_size)


__all__ = ["LOG_2PI", "OPTIMIZE", "Posterior"]
