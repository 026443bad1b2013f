"""Calibration metrics of Gaussian predictions ``N(mean, var)`` against observations y.

All functions take ``y``, ``mean``, ``var`` of one shape (broadcastable; tensors or
arrays), e.g. ``[N, C]`` for one task or ``[B, N, C]`` for B tasks, with ``var > 0``
in units of y squared. Elementwise scores:

- :func:`gaussian_nll`: ``½ log(2πσ²) + (y − μ)²/(2σ²)`` (nats);
- :func:`crps_gaussian`: ``σ [z(2Φ(z) − 1) + 2φ(z) − 1/√π]``, ``z = (y − μ)/σ`` (units of y).

Coverage of central intervals: the fraction of y in ``μ ± z_p σ``,
``z_p = Φ⁻¹((1 + p)/2)``, which is p when y follows the predicted distribution.
``per_task=True`` averages over every axis but the first (``[B]`` or ``[B, L]``);
otherwise over all entries (equal weight per point).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..errors import ConfigError

#: default interval levels
LEVELS: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95)


def _prep(y, mean, var) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    mean = torch.as_tensor(mean)
    dtype = mean.dtype if mean.is_floating_point() else torch.get_default_dtype()
    y, mean, var = (torch.as_tensor(t, dtype=dtype, device=mean.device) for t in (y, mean, var))
    try:
        y, mean, var = torch.broadcast_tensors(y, mean, var)
    except RuntimeError as e:
        raise ConfigError(f"y {tuple(y.shape)}, mean {tuple(mean.shape)} and var "
                          f"{tuple(var.shape)} do not broadcast") from e
    if not bool(torch.all(var > 0)):
        raise ConfigError("var must be > 0 everywhere (predictive variances)")
    return y, mean, var


def _reduce(t: torch.Tensor, per_task: bool) -> torch.Tensor:
    if not per_task:
        return t.mean()
    if t.dim() < 1:
        raise ConfigError("per_task=True needs a leading task axis [B, ...]")
    return t.reshape(t.shape[0], -1).mean(-1)


def _levels(levels: Sequence[float]) -> torch.Tensor:
    lv = torch.as_tensor(list(levels), dtype=torch.float64)
    if lv.dim() != 1 or lv.numel() == 0 or not bool(torch.all((lv > 0) & (lv < 1))):
        raise ConfigError(f"levels={levels!r} is not allowed; give numbers in (0, 1)")
    return lv


def gaussian_nll(y, mean, var) -> torch.Tensor:
    """Elementwise Gaussian negative log-likelihood (nats)."""
    y, mean, var = _prep(y, mean, var)
    return 0.5 * (math.log(2 * math.pi) + torch.log(var) + (y - mean).square() / var)


def crps_gaussian(y, mean, var) -> torch.Tensor:
    """Elementwise CRPS of ``N(mean, var)`` at y (closed form; units of y)."""
    y, mean, var = _prep(y, mean, var)
    sd = var.sqrt()
    z = (y - mean) / sd
    cdf = torch.special.ndtr(z)
    pdf = torch.exp(-0.5 * z.square()) / math.sqrt(2 * math.pi)
    return sd * (z * (2 * cdf - 1) + 2 * pdf - 1 / math.sqrt(math.pi))


def _half_widths(levels: torch.Tensor) -> list[float]:
    """z_p = Φ⁻¹((1 + p)/2) per level (interval half-widths in units of σ)."""
    return torch.special.ndtri((1 + levels) / 2).tolist()


def interval_hits(y, mean, var, level: float) -> torch.Tensor:
    """Elementwise bool: y inside the central ``level`` interval of ``N(mean, var)``."""
    y, mean, var = _prep(y, mean, var)
    (z,) = _half_widths(_levels([level]))
    return (y - mean).abs() <= z * var.sqrt()


def coverage(y, mean, var, levels: Sequence[float] = LEVELS, *,
             per_task: bool = False) -> torch.Tensor:
    """Observed coverage of the central intervals: ``[L]`` (``[B, L]`` per task)."""
    zs = _half_widths(_levels(levels))
    y, mean, var = _prep(y, mean, var)
    score = (y - mean).abs() / var.sqrt()
    hits = [_reduce((score <= z).to(torch.float64), per_task) for z in zs]
    return torch.stack(hits, dim=-1)


def calibration_curve(y, mean, var, levels: Sequence[float] | None = None, *,
                      per_task: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(nominal ``[L]``, observed coverage ``[L]`` or ``[B, L]``); default 19 levels 0.05..0.95.

    A calibrated predictor lies on the diagonal; below it, intervals are too narrow.
    """
    lv = torch.linspace(0.05, 0.95, 19, dtype=torch.float64) if levels is None \
        else _levels(levels)
    return lv, coverage(y, mean, var, lv.tolist(), per_task=per_task)


def summary(y, mean, var, *, levels: Sequence[float] = LEVELS,
            per_task: bool = False) -> dict[str, torch.Tensor]:
    """Mean NLL, mean CRPS and coverage at ``levels``: ``{"nll", "crps", "coverage@0.9", ...}``.

    Values are scalars, or ``[B]`` with ``per_task=True``.
    """
    out = {"nll": _reduce(gaussian_nll(y, mean, var), per_task),
           "crps": _reduce(crps_gaussian(y, mean, var), per_task)}
    cov = coverage(y, mean, var, levels, per_task=per_task)
    for i, p in enumerate(_levels(levels).tolist()):
        out[f"coverage@{p:g}"] = cov[..., i]
    return out


__all__ = ["LEVELS", "calibration_curve", "coverage", "crps_gaussian", "gaussian_nll",
           "interval_hits", "summary"]
