"""Evidence maximisation over many tasks by MacKay's fixed-point updates.

B posteriors share one noise variance per channel σ_c² and each has its own prior
precision τ_t (a scalar prior). At a maximum of ``Σ_t log Z_t`` (see :mod:`._laplace`)

- ``τ_t = γ_t / ‖φ_t − θ‖²`` with ``γ_t = P − τ_t tr Σ_t`` (effective parameters);
- ``σ_c² = Σ_t (RSS_tc + tr(Σ_t GGN_tc)) / Σ_t N_t``, GGN_tc the unit-noise curvature of
  channel c.

Iterating these needs one decomposition per task and step and no gradients, much
cheaper than differentiating log-determinants: for ``kron`` the traces come from the
eigendecompositions of A and G (precision eigenvalues ``g_o a_i + τ``).
"""

from __future__ import annotations

import logging

import torch

from ..errors import ConfigError
from ._laplace import Posterior

log = logging.getLogger(__name__)


def _traces(post: Posterior, w: torch.Tensor, tau: torch.Tensor,
            eig_a: list[torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(tr Σ, tr(Σ GGN_c) ``[C]``) at noise weights ``w = 1/σ²`` ``[C]`` and prior τ."""
    t = tau + post.jitter
    if post.structure == "kron":
        tr_s = w.new_zeros(())
        tr_g = torch.zeros_like(w)
        for k, L in enumerate(post.curv.layers):
            a = eig_a[k] if eig_a is not None else torch.linalg.eigvalsh(L.A).clamp_min(0.0)
            g, u = torch.linalg.eigh(torch.einsum("c,cop->op", w, L.G))
            lam = g.clamp_min(0.0)[:, None] * a[None, :] + t
            h = torch.einsum("po,cpq,qo->co", u, L.G, u)  # u_oᵀ G_c u_o
            tr_s = tr_s + (1.0 / lam).sum()
            tr_g = tr_g + torch.einsum("co,i,oi->c", h, a, 1.0 / lam)
        return tr_s, tr_g
    if post.structure == "diag":
        prec = torch.einsum("c,cp->p", w, post.curv) + t
        if post.physics_prec is not None:
            prec = prec + post.physics_prec
        return (1.0 / prec).sum(), (post.curv / prec).sum(-1)
    prec = torch.einsum("c,cpq->pq", w, post.curv)
    prec = prec + t * torch.eye(prec.shape[0], dtype=prec.dtype, device=prec.device)
    if post.physics_prec is not None:
        prec = prec + post.physics_prec
    chol, info = torch.linalg.cholesky_ex(prec)
    if int(info) > 0:
        raise ConfigError(f"the posterior precision (structure={post.structure!r}) is not "
                          "positive definite during the evidence fit; raise prior_precision "
                          "or use structure='kron' or 'diag' (a PSD Gauss-Newton curvature)")
    cov = torch.cholesky_inverse(chol)
    return torch.diagonal(cov).sum(), torch.einsum("pq,cqp->c", cov, post.curv)


def fit_hyper(posts: list[Posterior], *, fit_noise: bool = True, max_iter: int = 200,
              rtol: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """Shared noise and per-task prior precisions maximising ``Σ_t log Z_t``.

    Args:
        posts: B posteriors with a scalar prior (a number τ) and noise per channel; their
            current τ and σ are the start.
        fit_noise: fit σ too (else it stays at ``posts[0].noise_var``).
        max_iter: fixed-point iterations at most.
        rtol: stop when no σ² or τ changes by more than this relative amount.

    Returns:
        (σ² ``[C]`` in units of y squared, log-scales ``[B]``): use
        ``replace(post, noise_var=σ², prior=post.prior.rescaled(log_scale[t:t + 1]))``.
    """
    if any(p.prior.kind != "scalar" for p in posts):
        raise ConfigError("fit_hyper needs posteriors with one prior precision each "
                          "(prior_precision a number)")
    s2 = posts[0].noise_var.clone()
    tau0 = torch.stack([p.prior.value[0] for p in posts])
    tau = tau0.clone()
    delta2 = torch.stack([(p.mean - p.prior_mean).square().sum() for p in posts])
    rss = torch.stack([p.sq_residual for p in posts]).sum(0)
    n_tot = sum(p.n_points for p in posts)
    eig_a = [[torch.linalg.eigvalsh(L.A).clamp_min(0.0) for L in p.curv.layers]
             if p.structure == "kron" else None for p in posts]
    done = 0
    for done in range(1, max_iter + 1):  # noqa: B007 (reported below)
        w = 1.0 / s2
        tr_g = torch.zeros_like(s2)
        new_tau = torch.empty_like(tau)
        for t, p in enumerate(posts):
            tr_s, tg = _traces(p, w, tau[t], eig_a[t])
            tr_g = tr_g + tg
            gamma = (p.flat.numel - tau[t] * tr_s).clamp_min(1e-8)
            new_tau[t] = gamma / delta2[t].clamp_min(1e-300)
        tau, s2, change = accept(tau, new_tau, s2, rss, tr_g, n_tot, fit_noise)
        if change < rtol:
            break
    log_result(done, s2, tau)
    return s2, torch.log(tau / tau0)


def accept(tau: torch.Tensor, new_tau: torch.Tensor, s2: torch.Tensor, rss: torch.Tensor,
           tr_g: torch.Tensor, n_tot: torch.Tensor | float, fit_noise: bool
           ) -> tuple[torch.Tensor, torch.Tensor, float]:
    """One fixed-point step's (τ ``[B]``, σ² ``[C]``, largest relative change): σ_c² =
    (RSS_c + tr(Σ GGN_c)) / N when the noise is fitted, else kept."""
    new_s2 = (rss + tr_g) / n_tot if fit_noise else s2
    change = max(float(((new_tau - tau) / tau).abs().max()),
                 float(((new_s2 - s2) / s2).abs().max()))
    return new_tau, new_s2.clamp_min(1e-300), change


def log_result(done: int, s2: torch.Tensor, tau: torch.Tensor) -> None:
    """Log the iterations, σ ``[C]`` and the median τ of an evidence fit."""
    log.info("evidence fit: %d iterations, noise std %s, prior precision median %.3g",
             done, [round(float(v), 5) for v in s2.sqrt()], float(tau.median()))


__all__ = ["fit_hyper", "log_result"]
