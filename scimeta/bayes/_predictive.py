"""Linearized (GLM) predictive and posterior samples of a Laplace posterior.

Linearizing ``f(x; φ')`` around the mode φ, ``f(x; φ') ≈ f(x; φ) + J(x)(φ' − φ)``, the
predictive of f at a point is Gaussian with mean ``f(x; φ)`` and covariance
``J Σ Jᵀ``; of y, with ``diag(σ_c²)`` added. With ``Σ = Tᵀ T`` (T from
:meth:`Posterior.sqrt_covariance`), ``diag(J Σ Jᵀ)[c] = Σ_k (J T_kᵀ)_c²``: one
Jacobian–vector product per row T_k. Points and rows are taken ``chunk_size`` at a
time, so the largest intermediate is ``[chunk_size, chunk_size, C]``; the
points × parameters Jacobian is never formed. For ``kron`` the per-point Jacobian of
a layer is ``g ⊗ ā``, and the variance is summed in the eigenbases of G and A
(``chunk_size`` points at a time, no rows of T formed).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.func import jvp, vmap

from ..errors import ConfigError
from ..typing import Params
from ._curvature import check_chunk, model_fn, point_chunks, point_jacobians
from ._sqrt import DiagSqrt


class Prediction(NamedTuple):
    """Predictive moments per point and channel, each ``[N, C]`` (units of y; variances squared)."""

    mean: torch.Tensor
    var_f: torch.Tensor
    var_y: torch.Tensor

    @property
    def std_y(self) -> torch.Tensor:
        """Predictive standard deviation of y ``[N, C]``."""
        return self.var_y.sqrt()


def predict(posterior, x: torch.Tensor, *, chunk_size: int = 256) -> Prediction:
    """GLM predictive of a :class:`~scimeta.bayes.Posterior` at x ``[N, d_in]``.

    Returns mean ``f(x; φ)``, ``var_f = diag(J Σ Jᵀ)`` and ``var_y = var_f + σ_c²``.
    Memory is bounded by ``chunk_size`` points × ``chunk_size`` tangents × C.
    """
    checked = check_chunk(chunk_size)
    if checked is None:
        raise ConfigError("chunk_size=None is not allowed here; give an int >= 1")
    chunk_size = checked
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise ConfigError("x must be a [N, d_in] tensor")
    post = posterior
    if post.structure == "kron":
        return _predict_kron(post, x, chunk_size)
    f = model_fn(post.model, post.fixed, post.flat)
    if post.structure == "diag":
        return _predict_diag(post, f, x, chunk_size)
    sqrt = post.sqrt_covariance()
    means, variances = [], []
    with torch.no_grad():
        for s in point_chunks(x.shape[0], chunk_size):
            xs = x[s]
            mean = f(post.mean, xs)
            var = torch.zeros_like(mean)

            def tangent_out(t: torch.Tensor, xs=xs) -> torch.Tensor:
                return jvp(lambda v: f(v, xs), (post.mean,), (t,))[1]

            for rows in sqrt.chunks(chunk_size):
                var = var + vmap(tangent_out)(rows).square().sum(0)
            means.append(mean)
            variances.append(var)
    mean = torch.cat(means)
    var_f = torch.cat(variances)
    return Prediction(mean, var_f, var_f + post.noise_var)


def _predict_diag(post, f, x: torch.Tensor, chunk_size: int) -> Prediction:
    """Diagonal Σ: ``var_f[n, c] = Σ_p J[n, c, p]² Σ_pp`` from per-point Jacobians
    (``[chunk_size, C, P]`` at a time)."""
    sqrt = post.sqrt_covariance()
    assert isinstance(sqrt, DiagSqrt)
    inv = sqrt.scale.square()  # Σ_pp
    means, variances = [], []
    with torch.no_grad():
        for s in point_chunks(x.shape[0], chunk_size):
            means.append(f(post.mean, x[s]))
            variances.append(torch.einsum("ncp,p->nc",
                                          point_jacobians(f, post.mean, x[s]).square(), inv))
    var_f = torch.cat(variances)
    return Prediction(torch.cat(means), var_f, var_f + post.noise_var)


def _predict_kron(post, x: torch.Tensor, chunk_size: int) -> Prediction:
    """K-FAC predictive: per point and layer the Jacobian over ``[W | b]`` is ``g ⊗ ā``, so
    in the eigenbases of G and A, ``var_f = Σ_l Σ_{o,i} (u_oᵀ g)² (v_iᵀ ā)² / λ_oi`` with
    ``λ_oi = g_o a_i + τ_l`` (the rows of :class:`KronSqrt` never formed)."""
    from ._kron import KronSqrt, kron_layout, kron_point_terms

    sqrt = KronSqrt(post.curv.with_noise(post.noise_var), post.prior.value, post.jitter)
    params = {**post.fixed, **post.flat.unflatten(post.mean)}
    layout = kron_layout(post.model, post.flat, x[:1])
    f = model_fn(post.model, post.fixed, post.flat)
    variances: list[torch.Tensor] = []
    with torch.no_grad():
        mean = torch.cat([f(post.mean, x[s]) for s in point_chunks(x.shape[0], chunk_size)])
        for terms in kron_point_terms(post.model, params, x, layout, chunk_size):
            parts = []
            for spec, (ua, ug, scale, _, _) in zip(layout, sqrt.blocks, strict=True):
                a, g = terms[spec.module]
                pa = (a @ ua).square()                       # [n, w]
                pg = torch.einsum("nco,op->ncp", g, ug).square()  # [n, C, out]
                inv = scale.square().reshape(ug.shape[1], ua.shape[1])  # 1/λ [out, w]
                parts.append(torch.einsum("ncp,pi,ni->nc", pg, inv, pa))
            variances.append(torch.stack(parts).sum(0))
    var_f = torch.cat(variances)
    return Prediction(mean, var_f, var_f + post.noise_var)


def sample_params(posterior, n: int, *, generator: torch.Generator | None = None,
                  chunk_size: int = 256) -> Params:
    """``n`` draws ``φ + Tᵀ z``, ``z ~ N(0, I)``: a model parameter dict of ``[n, *shape]``.

    Entries not in the posterior are the fixed values expanded to ``[n, *shape]``; use
    ``torch.func.vmap(lambda p: functional_call(model, p, (x,)))(draws)`` to predict.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"n={n!r} is not allowed; it must be an int >= 1")
    post = posterior
    sqrt = post.sqrt_covariance()
    z = torch.randn(n, sqrt.n_rows, generator=generator, dtype=post.mean.dtype,
                    device=post.mean.device)
    out = post.mean.expand(n, -1).clone()
    start = 0
    with torch.no_grad():
        for rows in sqrt.chunks(chunk_size):
            k = rows.shape[0]
            out = out + z[:, start:start + k] @ rows
            start += k
    fixed = {k: v.expand(n, *v.shape) for k, v in post.fixed.items()}
    return {**fixed, **post.flat.unflatten(out)}


__all__ = ["Prediction", "predict", "sample_params"]
