"""Trajectory rollouts of many parameter draws, and their reduction to uncertainty bands.

A forecast band summarises trajectories ``[S, *lead, T, C]`` (S draws, T times, C state
channels, ``lead`` one axis per initial state or none) per time and channel: mean, std,
the quantiles of the central intervals at ``levels`` and their bounds. The same
summary is built from Gaussian moments (the linearized predictive), with the Gaussian
quantiles ``mean + Φ⁻¹(q)·std``. The result is an :class:`xarray.Dataset` with dims
``(trajectory,) time, state`` and ``quantile`` / ``level``; see :func:`band_dataset`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import xarray as xr
from torch import nn
from torch.func import functional_call, vmap

from ..errors import ConfigError
from ..nn import Forecaster
from ..nn._dynamics import ROLLOUTS
from ..typing import ParamsLike

#: default central interval levels of a forecast band
BAND_LEVELS: tuple[float, ...] = (0.5, 0.9, 0.95)


class Rollout(nn.Module):
    """The rollout of a :class:`~scimeta.nn.Forecaster`'s field (its own rule, RK4 or
    Euler), with its parameter names.

    It holds the forecaster's ``field`` (shared, not copied) and time grid ``t``, so a
    parameter dict of the forecaster (``"field.…"`` keys) plugs in unchanged. Called as
    ``rollout(y0 [N, C])`` it returns the trajectory without the initial state,
    ``[N, (T − 1)·C]`` time-major (the part a likelihood can see: ``y(t₀) = y0`` has no
    parameter dependence); ``rollout(y0, t=grid, full=True)`` returns ``[N, T', C]`` on
    another grid, ``y0`` included.
    """

    t: torch.Tensor

    def __init__(self, forecaster: Forecaster) -> None:
        super().__init__()
        if not isinstance(forecaster, Forecaster):
            raise ConfigError(f"model={type(forecaster).__name__} is not allowed; forecast "
                              "bands need a scimeta.nn.Forecaster (or a learner around one)")
        self.field = forecaster.field
        self.register_buffer("t", forecaster.t.detach().clone())
        self.substeps = forecaster.substeps
        self.step = ROLLOUTS[forecaster.method]

    def forward(self, y0: torch.Tensor, t: torch.Tensor | None = None,
                full: bool = False) -> torch.Tensor:
        """y0 ``[N, C]`` -> ``[N, (T − 1)·C]``, or ``[N, T, C]`` with ``full=True``."""
        grid = (self.t if t is None else t).to(y0.dtype)
        traj = self.step(lambda _s, y: self.field(y), y0, grid, self.substeps)
        return traj if full else traj[..., 1:, :].flatten(-2)


def check_count(name: str, value: object) -> int:
    """``value`` if it is an int >= 1, else a ConfigError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name}={value!r} is not allowed; it must be an int >= 1")
    return int(value)


def check_levels(levels: Sequence[float]) -> tuple[float, ...]:
    """Interval levels, each in (0, 1), sorted; else a ConfigError."""
    try:
        out = tuple(sorted(float(v) for v in levels))
    except (TypeError, ValueError):
        out = ()
    if not out or not all(0 < v < 1 for v in out):
        raise ConfigError(f"levels={levels!r} is not allowed; give numbers in (0, 1) "
                          "(central interval levels, e.g. (0.5, 0.9, 0.95))")
    return out


def check_grid(t: object, like: torch.Tensor) -> torch.Tensor:
    """A 1-d, finite, strictly increasing time grid ``[T]`` (T >= 2) as a tensor like ``like``."""
    try:
        grid = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    except (TypeError, ValueError, RuntimeError):
        grid = torch.zeros(0)
    ok = grid.dim() == 1 and grid.shape[0] >= 2 and bool(torch.isfinite(grid).all()) \
        and bool(torch.all(grid[1:] > grid[:-1]))
    if not ok:
        raise ConfigError(f"t={t!r} is not allowed; give a 1-d strictly increasing grid of "
                          "at least 2 finite times (t[0] is the initial time, the horizon "
                          "is t[-1])")
    return grid


def quantile_probs(levels: Sequence[float]) -> tuple[float, ...]:
    """Sorted quantiles ``(1 ∓ p)/2`` of the central intervals at ``levels``, and 0.5."""
    qs = {0.5} | {round((1 - p) / 2, 12) for p in levels} | {round((1 + p) / 2, 12)
                                                              for p in levels}
    return tuple(sorted(qs))


def rollout_params(rollout: Rollout, draws: ParamsLike, y0: torch.Tensor, t: torch.Tensor, *,
                   chunk: int = 64) -> torch.Tensor:
    """Trajectories of S parameter draws: ``[S, N, T, C]`` from y0 ``[N, C]`` on ``t`` ``[T]``.

    ``draws``: a parameter dict with values ``[S, *shape]`` (as
    :func:`~scimeta.bayes.sample_params` returns). ``chunk`` draws are rolled out at once
    with ``vmap`` over ``functional_call``: peak memory is ``chunk`` rollouts.
    """
    chunk = check_count("chunk", chunk)
    sizes = {v.shape[0] for v in draws.values()}
    if len(sizes) != 1:
        raise ConfigError(f"draws must share one leading sample axis; got sizes {sorted(sizes)}")
    (n,) = sizes

    def one(p: ParamsLike) -> torch.Tensor:
        return functional_call(rollout, dict(p), (y0,), {"t": t, "full": True})

    with torch.no_grad():
        return torch.cat([vmap(one)({k: v[s:s + chunk] for k, v in draws.items()})
                          for s in range(0, n, chunk)])


def band_dataset(mean: torch.Tensor, std: torch.Tensor, quantiles: torch.Tensor,
                 mode: torch.Tensor, t: torch.Tensor, levels: Sequence[float],
                 **attrs: object) -> xr.Dataset:
    """The band as a Dataset; tensors ``[*lead, T, C]`` (quantiles ``[Q, *lead, T, C]``).

    Variables: ``mean``, ``std``, ``mode`` (the rollout at the posterior mode)
    ``(time, state)``; ``quantiles(quantile, time, state)``; ``lower`` and ``upper``
    ``(level, time, state)``, the central interval bounds; with a leading
    ``trajectory`` dim when several initial states were given. Units: those of the state.
    """
    qs = quantile_probs(levels)
    lead = ("trajectory",) if mean.dim() == 3 else ()
    dims = (*lead, "time", "state")

    def arr(x: torch.Tensor) -> np.ndarray:
        return x.detach().cpu().numpy()

    q = arr(quantiles)
    lo = np.stack([q[qs.index(round((1 - p) / 2, 12))] for p in levels])
    hi = np.stack([q[qs.index(round((1 + p) / 2, 12))] for p in levels])
    coords: dict[str, object] = {"time": arr(t), "state": np.arange(mean.shape[-1]),
                                 "quantile": np.asarray(qs), "level": np.asarray(levels)}
    return xr.Dataset(
        {"mean": (dims, arr(mean)), "std": (dims, arr(std)), "mode": (dims, arr(mode)),
         "quantiles": (("quantile", *dims), q),
         "lower": (("level", *dims), lo), "upper": (("level", *dims), hi)},
        coords=coords, attrs={k: v for k, v in attrs.items() if v is not None})


def bands_from_samples(samples: torch.Tensor, mode: torch.Tensor, t: torch.Tensor,
                       levels: Sequence[float] = BAND_LEVELS, **attrs: object) -> xr.Dataset:
    """Band of trajectories ``[S, *lead, T, C]``: empirical mean, std (ddof 1) and quantiles
    (linear interpolation between order statistics)."""
    levels = check_levels(levels)
    n = samples.shape[0]
    std = samples.std(0) if n > 1 else torch.zeros_like(samples[0])
    srt = samples.sort(0).values        # torch.quantile refuses inputs over 2**24 entries
    parts = []
    for q in quantile_probs(levels):
        pos = q * (n - 1)
        lo = int(pos)
        hi = min(lo + 1, n - 1)
        parts.append(srt[lo] + (pos - lo) * (srt[hi] - srt[lo]))
    return band_dataset(samples.mean(0), std, torch.stack(parts), mode, t, levels, **attrs)


def bands_from_moments(mean: torch.Tensor, var: torch.Tensor, t: torch.Tensor,
                       levels: Sequence[float] = BAND_LEVELS, **attrs: object) -> xr.Dataset:
    """Gaussian band: mean ``[*lead, T, C]`` (also the mode), variance of the same shape."""
    levels = check_levels(levels)
    qs = torch.tensor(quantile_probs(levels), dtype=mean.dtype, device=mean.device)
    std = var.clamp_min(0).sqrt()
    z = torch.special.ndtri(qs).reshape(-1, *([1] * mean.dim()))
    return band_dataset(mean, std, mean + z * std, mean, t, levels, **attrs)


__all__ = ["BAND_LEVELS", "Rollout", "band_dataset", "bands_from_moments",
           "bands_from_samples", "rollout_params"]
