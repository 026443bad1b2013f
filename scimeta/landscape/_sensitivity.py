"""Sensitivity: where an eigenvector lives in the network, and the loss along it.

- :func:`layer_shares`: each flat direction mapped back to the parameter dict; the
  share of its squared norm in each layer (the tensors of one module, e.g.
  ``net.0.weight`` and ``net.0.bias`` form layer ``net.0``); rows sum to 1.
- :func:`loss_slices`: the post-adaptation query loss ``J(θ + t u)`` along
  directions u for steps t (1D slices through the meta-landscape).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..bayes import Flat
from ..errors import ConfigError
from ._ops import MetaHessian


def layer_of(name: str) -> str:
    """The layer (owning module) of a parameter name: ``net.0.weight`` -> ``net.0``;
    learned inner rates keep their full key's module (``inner_lr.net.0.weight`` ->
    ``inner_lr.net.0``)."""
    return name.rsplit(".", 1)[0] if "." in name else name


def layer_shares(flat: Flat | MetaHessian, vectors: np.ndarray) -> tuple[list[str], np.ndarray]:
    """(layers, shares ``[k, L]``) of the columns of ``vectors`` ``[P, k]``.

    ``shares[j, l] = ‖u_j restricted to layer l‖² / ‖u_j‖²``; NaN columns stay NaN.
    """
    if isinstance(flat, MetaHessian):
        flat = flat.flat
    vec = np.asarray(vectors, dtype=np.float64)
    if vec.ndim == 1:
        vec = vec[:, None]
    if vec.shape[0] != flat.numel:
        raise ConfigError(f"vectors has {vec.shape[0]} rows; expected P={flat.numel} (the "
                          "flat layout's length)")
    layers = list(dict.fromkeys(layer_of(n) for n in flat.names))
    mass = np.zeros((vec.shape[1], len(layers)))
    for name in flat.names:
        sl = flat.slice(name)
        mass[:, layers.index(layer_of(name))] += (vec[sl] ** 2).sum(0)
    total = mass.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return layers, mass / total


def default_radii(hessian: MetaHessian, points: int = 21, scale: float = 0.05) -> np.ndarray:
    """``points`` steps in ``[-r, r]`` with ``r = scale · ‖θ‖`` over the selection."""
    if isinstance(points, bool) or not isinstance(points, int) or points < 2:
        raise ConfigError(f"points={points!r} is not allowed; it must be an int >= 2")
    if not scale > 0:
        raise ConfigError(f"scale={scale!r} is not allowed; it must be > 0")
    norm = float(hessian.flat.flatten(hessian.theta).norm())
    r = scale * (norm if norm > 0 else 1.0)
    return np.linspace(-r, r, points)


def loss_slices(hessian: MetaHessian, directions: np.ndarray,
                radii: Sequence[float] | np.ndarray | None = None) -> np.ndarray:
    """``J(θ + t u_j)`` ``[k, len(radii)]`` for the unit columns u_j of ``directions``
    ``[P, k]`` and steps t in ``radii`` (default :func:`default_radii`); the
    post-adaptation query loss over the operator's batch, in the parameters'
    dtype. NaN directions give NaN rows."""
    d = np.asarray(directions, dtype=np.float64)
    if d.ndim == 1:
        d = d[:, None]
    if d.shape[0] != hessian.dim:
        raise ConfigError(f"directions has {d.shape[0]} rows; expected P={hessian.dim}")
    t = default_radii(hessian) if radii is None else np.asarray(radii, dtype=np.float64)
    out = np.full((d.shape[1], len(t)), np.nan)
    for j in range(d.shape[1]):
        u = d[:, j]
        if not np.all(np.isfinite(u)):
            continue
        unit = torch.from_numpy(u / np.linalg.norm(u))
        for i, step in enumerate(t):
            out[j, i] = hessian.loss_at(step * unit)
    return out


__all__ = ["default_radii", "layer_of", "layer_shares", "loss_slices"]
