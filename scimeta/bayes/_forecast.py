"""Laplace posteriors for the forecasting surrogate and uncertainty bands on its trajectories.

Model: a :class:`~scimeta.nn.Forecaster` maps an initial state y0 ``[C]`` to the RK4
rollout of its vector field on the grid t ``[T]``. Observed trajectories ``[N, T, C]``
of one environment give the likelihood ``y[n, k, c] ~ N(y(t_k; y0_n, φ)[c], σ_c²)`` for
k >= 1 (``y(t₀) = y0`` carries no information on φ), with one noise scale per state
channel c shared over time — the same misfit as the MSE on flattened trajectories
that MAML adapts with. Prior ``N(θ, Λ⁻¹)``, posterior ``N(φ, (GGN + Λ)⁻¹)`` with

``GGN = Σ_c (1/σ_c²) Σ_{n,k} J_{nk c}ᵀ J_{nk c}``, ``J_{nk c} = ∂y(t_k; y0_n, φ)[c]/∂φ``

(or the exact Hessian), kept per state channel ``[C, P, P]`` so noise and prior can be
fitted by the evidence exactly as in :func:`~scimeta.bayes.fit_laplace`.

Bands on a forecast from y0 on a grid t (any horizon): posterior draws φ_s rolled out
(``chunk`` draws at a time, ``vmap`` over ``functional_call``) and reduced per time and
channel (:meth:`ForecastPosterior.sample_bands`), or the linearized (GLM) Gaussian band
``var[k, c] = diag(J Σ Jᵀ)`` from Jacobian–vector products of the whole rollout against
rows of a square root of Σ, ``chunk`` rows at a time
(:meth:`ForecastPosterior.linearized_bands`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
import xarray as xr
from torch.func import functional_call, hessian, jvp, vmap

from ..errors import ConfigError
from ..nn import Forecaster
from ..typing import Params, ParamsLike
from ._bands import (
    BAND_LEVELS,
    Rollout,
    bands_from_moments,
    bands_from_samples,
    check_count,
    check_grid,
    rollout_params,
)
from ._curvature import check_chunk, model_fn, noise_variance, point_chunks, point_jacobians
from ._fit import _check_jitter, _ensure_pd
from ._flat import Flat, split_params
from ._laplace import Posterior
from ._prior import make_prior

#: curvature structures for forecasts (K-FAC needs each Linear called once per pass;
#: a rollout calls the field 4·substeps·(T − 1) times)
FORECAST_STRUCTURES: tuple[str, ...] = ("full", "diag", "hessian")


def _unwrap(model: object) -> tuple[Forecaster, list[str] | None]:
    if isinstance(model, Forecaster):
        return model, None
    inner = getattr(model, "model", None)
    if isinstance(inner, Forecaster):
        return inner, list(getattr(model, "adapted", None) or []) or None
    raise ConfigError(f"model={type(model).__name__} is not allowed; give a "
                      "scimeta.nn.Forecaster or a scimeta.meta learner around one")


def _targets(traj: object, y0: object, T: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(y0 ``[N, C]``, targets ``[N, T − 1, C]``) from traj ``[N, T·C]`` or ``[N, T, C]``."""
    if not isinstance(y0, torch.Tensor) or y0.dim() != 2 or y0.shape[0] < 1:
        raise ConfigError("y0 must be a [N, C] tensor of initial states with N >= 1")
    N, C = y0.shape
    if not isinstance(traj, torch.Tensor) or traj.shape not in ((N, T * C), (N, T, C)):
        got = tuple(traj.shape) if isinstance(traj, torch.Tensor) else type(traj).__name__
        raise ConfigError(f"traj={got} is not allowed; give the observed trajectories "
                          f"[{N}, {T}, {C}] or flattened time-major [{N}, {T * C}] "
                          f"(T = {T} times of the forecaster's grid)")
    return y0, traj.reshape(N, T, C)[:, 1:].to(y0)


def forecast_curvature(f, vec: torch.Tensor, y0: torch.Tensor, y: torch.Tensor,
                       structure: str, chunk_size: int | None) -> torch.Tensor:
    """Unit-noise curvature per state channel: ``[C, P, P]`` (``[C, P]`` for diag).

    ``f(vec, y0 [n, C]) -> [n, (T − 1)·C]``; y ``[N, T − 1, C]`` (needed by hessian).
    Per-trajectory Jacobians ``[n, (T − 1)·C, P]`` are formed ``chunk_size`` at a time.
    """
    N, T1, C = y.shape
    if structure == "hessian":
        def half_sq(v: torch.Tensor) -> torch.Tensor:
            return 0.5 * (y - f(v, y0).reshape(N, T1, C)).square().sum((0, 1))
        return hessian(half_sq)(vec)
    total = None
    for s in point_chunks(N, chunk_size):
        j = point_jacobians(f, vec, y0[s]).reshape(-1, T1, C, vec.shape[0])
        part = (torch.einsum("ntcp,ntcp->cp", j, j) if structure == "diag"
                else torch.einsum("ntcp,ntcq->cpq", j, j))
        total = part if total is None else total + part
    assert total is not None
    return total


def fit_forecast(model, params: ParamsLike, y0: torch.Tensor, traj: torch.Tensor, *,
                 prior_mean: ParamsLike | None = None, structure: str = "full",
                 prior_precision: object = 1.0, noise_std: object = 1.0,
                 names: Iterable[str] | None = None, chunk_size: int | None = None,
                 optimize: str | None = None, jitter: float = 0.0) -> ForecastPosterior:
    """Laplace posterior of a forecaster's field parameters around φ = ``params``.

    Args:
        model: a :class:`~scimeta.nn.Forecaster`, or a learner around one (``names`` then
            defaults to its adapted parameters).
        params: φ, the adapted parameter dict (``"field.…"`` keys), taken as the mode.
        y0: initial states of the observed trajectories ``[N, C]`` (the support inputs).
        traj: the observed trajectories on the forecaster's grid, ``[N, T, C]`` or
            ``[N, T·C]`` time-major (the support targets of an EnvironmentReader batch).
        prior_mean: θ (the meta-init; default zeros). ``prior_precision``: as in
            :func:`~scimeta.bayes.fit_laplace`. ``noise_std``: σ (state units), a number
            (one shared scale) or ``[C]`` (one per state channel, shared over time).
        structure: one of :data:`FORECAST_STRUCTURES`.
        chunk_size: trajectories per Jacobian block (None: all at once).
        optimize: None, ``"prior"``, ``"noise"`` or ``"both"`` (evidence maximisation).
        jitter: as in :func:`~scimeta.bayes.fit_laplace`.
    """
    forecaster, learner_names = _unwrap(model)
    if structure not in FORECAST_STRUCTURES:
        raise ConfigError(f"structure={structure!r} is not allowed for forecasts; valid: "
                          f"{', '.join(FORECAST_STRUCTURES)} (kron/last-layer need each "
                          "Linear layer called once, a rollout calls the field many times)")
    chunk_size = check_chunk(chunk_size)
    jitter = _check_jitter(jitter)
    rollout = Rollout(forecaster)
    y0, y = _targets(traj, y0, rollout.t.shape[0])
    names = learner_names if names is None else names
    flat = Flat.of_model(rollout, names)
    params = {k: v.detach() for k, v in params.items()}
    fixed = split_params(params, flat, rollout)
    mean = flat.flatten(params).to(y0)
    theta = torch.zeros_like(mean) if prior_mean is None else \
        flat.flatten({k: v.detach() for k, v in prior_mean.items()}).to(mean)
    f = model_fn(rollout, fixed, flat)
    with torch.no_grad():
        curv = forecast_curvature(f, mean, y0, y, structure, chunk_size)
        resid = (y - f(mean, y0).reshape(y.shape)).square().sum((0, 1))
    prior = make_prior(prior_precision, flat, mean)
    if structure == "diag" and not prior.is_diagonal:
        raise ConfigError("structure='diag' needs a diagonal prior precision (a number, a "
                          "per-tensor dict or a [P] vector), not a [P, P] matrix")
    shared = torch.as_tensor(noise_std).dim() == 0
    post = Posterior(rollout, structure, flat, fixed, mean, theta, prior,
                     noise_variance(noise_std, y.shape[2], mean), shared, curv,
                     y.shape[0] * y.shape[1], resid, 0.0)
    post = _ensure_pd(post, jitter)
    if optimize is not None:
        post = _ensure_pd(post.optimize(optimize), jitter)
    return ForecastPosterior(post, rollout)


def _initial(y0: object, C: int) -> tuple[torch.Tensor, bool]:
    """(y0 ``[N, C]``, whether one state ``[C]`` was given)."""
    if not isinstance(y0, torch.Tensor) or y0.dim() not in (1, 2) or y0.shape[-1] != C \
            or y0.numel() == 0:
        got = tuple(y0.shape) if isinstance(y0, torch.Tensor) else type(y0).__name__
        raise ConfigError(f"y0={got} is not allowed; give one initial state [{C}] or "
                          f"several [N, {C}]")
    return (y0.unsqueeze(0), True) if y0.dim() == 1 else (y0, False)


@dataclass(frozen=True)
class ForecastPosterior:
    """A Laplace posterior over a forecaster's field parameters, and its forecast bands.

    ``laplace``: the :class:`~scimeta.bayes.Posterior` (curvature and noise per state
    channel; its ``predict`` is not meant for forecasts); ``rollout``: the model it is
    over. Forecasts start from y0 ``[C]`` (bands ``(time, state)``) or ``[N, C]`` (a
    leading ``trajectory`` dim) on a grid t (default: the forecaster's; any horizon).
    """

    laplace: Posterior
    rollout: Rollout

    @property
    def noise_std(self) -> torch.Tensor:
        """σ_c per state channel ``[C]`` (state units)."""
        return self.laplace.noise_std

    @property
    def params(self) -> Params:
        """The mode φ as a parameter dict."""
        return self.laplace.params

    def log_marginal_likelihood(self) -> torch.Tensor:
        """Laplace ``log p(trajectories)`` (nats) of the fitted observations."""
        return self.laplace.log_marginal_likelihood()

    def _setup(self, y0: object, t: object | None):
        y0_, one = _initial(y0, self.laplace.noise_var.shape[0])
        y0_ = y0_.to(self.laplace.mean)
        grid = self.rollout.t.to(y0_) if t is None else check_grid(t, y0_)
        return y0_, one, grid

    def trajectory(self, y0: torch.Tensor, t: object | None = None) -> torch.Tensor:
        """The rollout at the mode: ``[T, C]`` (``[N, T, C]`` for y0 ``[N, C]``)."""
        y0_, one, grid = self._setup(y0, t)
        with torch.no_grad():
            out = functional_call(self.rollout, self.params, (y0_,), {"t": grid, "full": True})
        return out[0] if one else out

    def sample_trajectories(self, y0: torch.Tensor, n_samples: int, *, t: object | None = None,
                            chunk: int = 64, generator: torch.Generator | None = None,
                            scale: float = 1.0, observation_noise: bool = False
                            ) -> torch.Tensor:
        """Rollouts of ``n_samples`` posterior draws: ``[S, T, C]`` (``[S, N, T, C]``).

        Draws ``φ + √scale · Tᵀz`` (``scale`` multiplies Σ: a temperature; 0 gives the mode)
        are made and rolled out ``chunk`` at a time. ``observation_noise`` adds
        ``N(0, σ_c²)`` at every time after the first (bands for new measurements).
        """
        n = check_count("n_samples", n_samples)
        chunk = check_count("chunk", chunk)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale >= 0:
            raise ConfigError(f"scale={scale!r} is not allowed; it must be a number >= 0")
        y0_, one, grid = self._setup(y0, t)
        post = self.laplace
        sqrt = post.sqrt_covariance()
        out = []
        for start in range(0, n, chunk):
            k = min(chunk, n - start)
            z = torch.randn(k, sqrt.n_rows, generator=generator, dtype=post.mean.dtype,
                            device=post.mean.device)
            vec = post.mean.expand(k, -1).clone()
            if scale > 0:
                row = 0
                for rows in sqrt.chunks(chunk):
                    vec = vec + scale ** 0.5 * (z[:, row:row + rows.shape[0]] @ rows)
                    row += rows.shape[0]
            draws = {**{name: v.expand(k, *v.shape) for name, v in post.fixed.items()},
                     **post.flat.unflatten(vec)}
            out.append(rollout_params(self.rollout, draws, y0_, grid, chunk=k))
        samples = torch.cat(out)                                      # [S, N, T, C]
        if observation_noise:
            eps = torch.randn(samples[:, :, 1:].shape, generator=generator,
                              dtype=samples.dtype, device=samples.device)
            samples[:, :, 1:] += eps * self.noise_std.to(samples)
        return samples[:, 0] if one else samples

    def sample_bands(self, y0: torch.Tensor, n_samples: int = 200, *,
                     t: object | None = None, levels: Sequence[float] = BAND_LEVELS,
                     chunk: int = 64, generator: torch.Generator | None = None,
                     scale: float = 1.0, observation_noise: bool = False) -> xr.Dataset:
        """Band from posterior samples (see :meth:`sample_trajectories`): a Dataset with
        ``mean``, ``std``, ``mode`` ``(time, state)``, ``quantiles(quantile, time, state)``,
        ``lower``/``upper`` ``(level, time, state)``."""
        samples = self.sample_trajectories(y0, n_samples, t=t, chunk=chunk,
                                           generator=generator, scale=scale,
                                           observation_noise=observation_noise)
        _, _, grid = self._setup(y0, t)
        return bands_from_samples(samples, self.trajectory(y0, grid), grid, levels,
                                  method="samples", n_samples=int(n_samples),
                                  observation_noise=int(observation_noise))

    def linearized_moments(self, y0: torch.Tensor, *, t: object | None = None,
                           chunk: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """GLM mean (the mode's rollout) and variance ``diag(J Σ Jᵀ)``, each ``[T, C]``
        (``[N, T, C]``), J the Jacobian of the whole rollout w.r.t. the flat parameters.

        Σ = TᵀT; ``chunk`` rows of T are pushed through ``jvp`` at once (memory: ``chunk``
        rollout tangents), the ``[T·C, P]`` Jacobian is never formed.
        """
        chunk = check_count("chunk", chunk)
        y0_, one, grid = self._setup(y0, t)
        post = self.laplace

        def f(vec: torch.Tensor) -> torch.Tensor:
            return functional_call(self.rollout, {**post.fixed, **post.flat.unflatten(vec)},
                                   (y0_,), {"t": grid, "full": True})

        def tangent(row: torch.Tensor) -> torch.Tensor:
            return jvp(f, (post.mean,), (row,))[1]

        with torch.no_grad():
            mean = f(post.mean)
            var = torch.zeros_like(mean)
            for rows in post.sqrt_covariance().chunks(chunk):
                var = var + vmap(tangent)(rows).square().sum(0)
        return (mean[0], var[0]) if one else (mean, var)

    def linearized_bands(self, y0: torch.Tensor, *, t: object | None = None,
                         levels: Sequence[float] = BAND_LEVELS, chunk: int = 64,
                         observation_noise: bool = False) -> xr.Dataset:
        """Gaussian band from :meth:`linearized_moments` (plus σ_c² after the first time
        with ``observation_noise``); the same variables as :meth:`sample_bands`."""
        mean, var = self.linearized_moments(y0, t=t, chunk=chunk)
        if observation_noise:
            var = var.clone()
            var[..., 1:, :] += self.laplace.noise_var.to(var)
        _, _, grid = self._setup(y0, t)
        return bands_from_moments(mean, var, grid, levels, method="linearized",
                                  observation_noise=int(observation_noise))


__all__ = ["FORECAST_STRUCTURES", "ForecastPosterior", "fit_forecast", "forecast_curvature"]
