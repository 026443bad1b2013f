"""K-FAC Laplace posteriors of B tasks at once, every step batched over a task axis.

The per-task model is that of :class:`~scimeta.bayes.Posterior` with ``structure="kron"``
and one prior precision τ_t per task (``prior_precision`` a number, or ``[B]``): prior
``N(θ_t, τ_t⁻¹ I)``, noise σ_c² ``[C]`` shared by the tasks. Nothing loops over tasks in
Python: the per-point K-FAC terms (ā ``[B, N, w]``, g ``[B, N, C, out]``) come from one
``vmap`` over tasks, the factors' eigendecompositions are ``torch.linalg.eigh`` on
``[B, n, n]`` stacks, the evidence is a ``[B]`` vector, MacKay's fixed point
(:mod:`._hyper`) updates every τ_t and the shared σ² together, and the predictive is
batched matrix products in the eigenbases of G and A.

With few support points A and G are low rank; their spectra come from the smaller of
each factor and its Gram matrix (:mod:`._kron_spectra`), and only their ranges are kept.

Equality with the per-task path (``fit_laplace`` + :func:`~scimeta.bayes._hyper.fit_hyper`
+ ``predict``) is tested to 1e-10 in float64 (``tests/test_bayes_batch.py``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.func import functional_call, vmap

from ..errors import ConfigError
from ..typing import Params, ParamsLike
from ._curvature import check_chunk, check_model, noise_variance
from ._flat import Flat, split_params
from ._kron import KronFactors, KronLayer, KronLayerSpec, kron_layout, not_pd_message
from ._kron_spectra import Terms, a_spectrum, batch_terms, g_rows, g_spectrum, unit_gram
from ._predictive import Prediction

if TYPE_CHECKING:
    from ._laplace import Posterior

LOG_2PI = math.log(2.0 * math.pi)


@dataclass(frozen=True)
class KronBatch:
    """K-FAC Laplace posteriors of B tasks over the flat vector ``flat`` (P entries).

    ``mean`` φ_t and ``prior_mean`` θ_t ``[B, P]``; ``tau`` τ_t ``[B]`` (1/(units of φ)²);
    ``noise_var`` σ_c² ``[C]``; ``terms``: the support points' K-FAC terms per layer
    (:func:`~scimeta.bayes._kron_spectra.batch_terms`); ``spec_a`` per layer
    :func:`~scimeta.bayes._kron_spectra.a_spectrum`; ``sq_residual``
    ``Σ_n (y − f)²`` ``[B, C]`` over ``n_points`` support points per task.

    Per layer, the precision's eigenvalues are ``λ_oi = g_o a_i + τ̃`` (τ̃ = τ + jitter)
    over the ranges of G and A and τ̃ elsewhere, so only the ranges are kept.
    """

    model: nn.Module
    flat: Flat
    layout: tuple[KronLayerSpec, ...]
    fixed: Params
    mean: torch.Tensor
    prior_mean: torch.Tensor
    tau: torch.Tensor
    noise_var: torch.Tensor
    terms: Terms
    spec_a: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    n_points: int
    sq_residual: torch.Tensor
    jitter: float = 0.0

    @property
    def n_tasks(self) -> int:
        return self.mean.shape[0]

    @cached_property
    def grams(self) -> list[torch.Tensor]:
        """Per layer :func:`unit_gram` of the support terms (computed once)."""
        return [unit_gram(g) for _, g in self.terms]

    @cached_property
    def spec_g(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer (g ``[B, r]``, R_G ``[B, r, out]``) at ``noise_var`` (computed once)."""
        out = []
        for (_, g_t), gram in zip(self.terms, self.grams, strict=True):
            g, vecs, _ = g_spectrum(gram, self.noise_var)
            out.append((g, g_rows(g_t, self.noise_var, g, vecs)))
        return out

    def factors(self) -> KronFactors:
        """The per-channel unit-noise K-FAC factors with a leading ``[B]``."""
        layers = tuple(KronLayer(s, a.transpose(-1, -2) @ a / self.n_points,
                                 torch.einsum("bnco,bncp->bcop", g, g))
                       for s, (a, g) in zip(self.layout, self.terms, strict=True))
        return KronFactors(self.flat, layers, self.n_points, True)

    def _tau(self) -> torch.Tensor:
        """τ̃ = τ + jitter ``[B]``; a ConfigError when not > 0."""
        t = self.tau + self.jitter
        if not bool(torch.all(t > 0)):
            raise ConfigError(not_pd_message("kron", float(self.tau.min())))
        return t

    def log_marginal_likelihood(self) -> torch.Tensor:
        """Laplace ``log p(y_t)`` per task ``[B]`` (nats), as :class:`Posterior` computes it."""
        s2, P, t = self.noise_var, self.flat.numel, self._tau()
        log_lik = -0.5 * (self.n_points * (LOG_2PI + torch.log(s2))
                          + self.sq_residual / s2).sum(-1)
        d2 = (self.mean - self.prior_mean).square().sum(-1)
        log_prior = 0.5 * (-P * LOG_2PI + P * torch.log(self.tau) - self.tau * d2)
        logdet = torch.zeros_like(t)
        for spec, (g, _), (a, _) in zip(self.layout, self.spec_g, self.spec_a, strict=True):
            lam = g[:, :, None] * a[:, None, :] + t[:, None, None]
            rest = spec.out_features * spec.width - lam.shape[-1] * lam.shape[-2]
            logdet = logdet + torch.log(lam).sum((-2, -1)) + rest * torch.log(t)
        return log_lik + log_prior + 0.5 * P * LOG_2PI - 0.5 * logdet

    def predict(self, x: torch.Tensor, *, chunk_size: int | None = None) -> Prediction:
        """GLM predictive at x ``[B, Q, d_in]``: mean, var_f, var_y, each ``[B, Q, C]``.

        Per layer and point, with 1/λ = 1/τ̃ − g_o a_i/(τ̃ λ_oi) (see
        :func:`~scimeta.bayes._predictive.predict` for the full-basis form),
        ``var_f = (|g|² |ā|² − Σ_{o,i} (R_G g)_o² (R_A ā)_i² / λ_oi) / τ̃``: batched matrix
        products over the ranges of G and A. ``chunk_size``: query points per task at a
        time for the Jacobians. The subtraction costs accuracy only relative to the
        prior's share ``|g|² |ā|² / τ̃`` (rounding ~1e-16 of it), which matters only where
        the data shrink the variance by many orders of magnitude.
        """
        chunk_size = check_chunk(chunk_size)
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[0] != self.n_tasks:
            raise ConfigError(f"x must be a [B, Q, d_in] tensor with B={self.n_tasks}")
        params = {**self.fixed, **self.flat.unflatten(self.mean)}
        B, Q = x.shape[:2]
        t = self._tau()
        with torch.no_grad():
            mean = vmap(lambda p, xx: functional_call(self.model, p, (xx,)))(params, x)
            terms = batch_terms(self.model, params, x, self.layout, chunk_size)
            var = mean.new_zeros(mean.shape)
            for (a_q, g_q), (g, rg), (a, ra) in zip(terms, self.spec_g, self.spec_a,
                                                     strict=True):
                inv = 1.0 / (g[:, :, None] * a[:, None, :] + t[:, None, None])  # [B, rG, rA]
                sa = (a_q @ ra.transpose(-1, -2)).square()                    # [B, Q, rA]
                sg = (g_q.reshape(B, -1, g_q.shape[-1]) @ rg.transpose(-1, -2)).square()
                corr = ((sg @ inv).reshape(B, Q, -1, a.shape[-1]) * sa[:, :, None]).sum(-1)
                full = g_q.square().sum(-1) * a_q.square().sum(-1)[..., None]  # [B, Q, C]
                var = var + (full - corr) / t[:, None, None]
        return Prediction(mean, var, var + self.noise_var)

    def fit_hyper(self, *, fit_noise: bool = True, max_iter: int = 200,
                  rtol: float = 1e-6) -> KronBatch:
        """MacKay's fixed point for the shared σ² and every τ_t, all tasks at once.

        The same iteration, start and stopping rule as :func:`~scimeta.bayes._hyper.
        fit_hyper` on the per-task posteriors (so the same result to rounding); per
        iteration one :func:`g_spectrum` per layer.
        """
        from ._hyper import accept, log_result
        s2, tau = self.noise_var.clone(), self.tau.clone()
        P, n_tot = self.flat.numel, self.n_tasks * self.n_points
        delta2 = (self.mean - self.prior_mean).square().sum(-1).clamp_min(1e-300)
        rss = self.sq_residual.sum(0)
        done = 0
        for done in range(1, max_iter + 1):  # noqa: B007 (reported below)
            t = tau + self.jitter
            tr_s = torch.zeros_like(tau)
            tr_g = torch.zeros_like(s2)
            for spec, gram, (a, _) in zip(self.layout, self.grams, self.spec_a, strict=True):
                g, _, h = g_spectrum(gram, s2)
                inv = 1.0 / (g[:, :, None] * a[:, None, :] + t[:, None, None])
                rest = spec.out_features * spec.width - inv.shape[-1] * inv.shape[-2]
                tr_s = tr_s + inv.sum((-2, -1)) + rest / t
                tr_g = tr_g + torch.einsum("bco,bi,boi->c", h, a, inv)
            gamma = (P - tau * tr_s).clamp_min(1e-8)
            tau, s2, change = accept(tau, gamma / delta2, s2, rss, tr_g, n_tot, fit_noise)
            if change < rtol:
                break
        log_result(done, s2, tau)
        return replace(self, noise_var=s2, tau=tau)

    def posterior(self, t: int) -> Posterior:
        """Task t as a per-task :class:`~scimeta.bayes.Posterior` (``structure="kron"``)."""
        from ._laplace import Posterior
        from ._prior import make_prior
        f = self.factors()
        layers = tuple(replace(L, A=L.A[t], G=L.G[t]) for L in f.layers)
        return Posterior(self.model, "kron", self.flat, {k: v[t] for k, v in self.fixed.items()},
                         self.mean[t], self.prior_mean[t],
                         make_prior(float(self.tau[t]), self.flat, self.mean),
                         self.noise_var, False, replace(f, layers=layers), self.n_points,
                         self.sq_residual[t], self.jitter)


def fit_kron_batch(model, params: ParamsLike, x: torch.Tensor, y: torch.Tensor, *,
                   prior_mean: ParamsLike | None = None, prior_precision: object = 1.0,
                   noise_std: object = 1.0, names: Iterable[str] | None = None,
                   chunk_size: int | None = None, optimize: bool = False) -> KronBatch:
    """K-FAC Laplace posteriors of B tasks around φ_t = ``params`` ``[B, *shape]``.

    ``model``: an ``nn.Module`` or a :mod:`scimeta.meta` learner (``names`` then defaults
    to its adapted parameters); x ``[B, N, d_in]``, y ``[B, N, C]``; ``prior_mean`` θ
    (unbatched, or ``[B, *shape]``; default zeros); ``prior_precision`` τ, a number > 0
    or ``[B]``; ``noise_std`` σ, a number or ``[C]`` (units of y); ``optimize=True``: fit
    the shared σ_c and each τ_t by the evidence (:meth:`KronBatch.fit_hyper`). Equals
    ``fit_laplace(structure="kron")`` task by task (and
    :func:`~scimeta.bayes._hyper.fit_hyper` on their list). With τ > 0 the precision is
    always positive definite, so there is no jitter option.
    """
    from ._fit import _unwrap
    model, learner_names = _unwrap(model)
    names = learner_names if names is None else names
    check_model(model)
    chunk_size = check_chunk(chunk_size)
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor) or x.dim() != 3 \
            or y.dim() != 3 or x.shape[:2] != y.shape[:2] or x.shape[1] < 1:
        raise ConfigError("x must be [B, N, d_in] and y [B, N, C] with the same B and N >= 1")
    B, N, C = y.shape
    flat = Flat.of_model(model, names)
    params = {k: v.detach() for k, v in params.items()}
    fixed = split_params(params, flat, model)
    mean = flat.flatten(params)
    if mean.dim() != 2 or mean.shape[0] != B:
        raise ConfigError(f"params must be [B, *shape] with B={B} tasks")
    theta = torch.zeros_like(mean) if prior_mean is None else \
        flat.flatten({k: v.detach() for k, v in prior_mean.items()}).to(mean).expand(B, -1)
    tau = torch.as_tensor(prior_precision, dtype=mean.dtype, device=mean.device)
    tau = tau.expand(B).clone() if tau.dim() == 0 else tau.clone()
    if tau.shape != (B,) or not bool(torch.all(tau > 0)):
        raise ConfigError(f"prior_precision must be a number > 0 or [B={B}] numbers > 0")
    layout = kron_layout(model, flat, x[0, :1])
    with torch.no_grad():
        terms = batch_terms(model, params, x, layout, chunk_size)
        pred = vmap(lambda p, xx: functional_call(model, p, (xx,)))(params, x)
        spec_a = tuple(a_spectrum(a) for a, _ in terms)
    if pred.shape != y.shape:
        raise ConfigError(f"the model output {tuple(pred.shape)} does not match y {tuple(y.shape)}")
    post = KronBatch(model, flat, layout, fixed, mean, theta.clone(), tau,
                     noise_variance(noise_std, C, mean), terms, spec_a, N,
                     (y - pred).square().sum(1))
    return post.fit_hyper() if optimize else post


__all__ = ["KronBatch", "fit_kron_batch"]
