"""Spectral families solved on a finer grid than the one they store.

Some published datasets fix a coarse output grid (LEADS/CoDA store Gray-Scott and
Navier-Stokes fields on 32 x 32 points) on which a Fourier pseudo-spectral solve is
not resolved. :class:`RefinedSpectralFamily` keeps the family's declared grid
(``shape``, :attr:`space`) as the *stored* grid and solves on ``refine`` times as
many points per axis:

1. the initial state ``[N, *space, C]`` on the stored grid is prolonged to the fine
   grid by :meth:`prolong` (``"fourier"``: spectral zero-padding, exact for fields
   whose spectrum fits the stored grid, Nyquist modes dropped; ``"cells"``: each
   stored point's value fills its cell ``[x_i - dx/2, x_i + dx/2)``, cell edges get
   the mean of their neighbours; for piecewise-constant initial data such as
   Gray-Scott squares);
2. the stepper runs on the fine grid (:meth:`~RefinedSpectralFamily.fourier_grid`),
   and the resolution check (:func:`~scimeta.pde.field_status`) is made there;
3. the fields are returned at the stored points by :meth:`restrict` (every
   ``refine``-th fine point, which coincide exactly with the stored coordinates).

The time loop itself is :meth:`SpectralPdeFamily.solve_batch
<scimeta.pde.SpectralPdeFamily.solve_batch>`; this class overrides only its hooks.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from .errors import ConfigError
from .pde import SpectralPdeFamily
from .solvers.fourier import FourierGrid

PROLONGATIONS = ("fourier", "cells")


def prolong_fourier(u: np.ndarray, ndim: int, factor: int) -> np.ndarray:
    """Spectral interpolation of ``u`` ``[N, *space, C]`` onto ``factor`` x finer grids.

    The modes with ``|m_i| < n_i / 2`` are copied into a zero-padded spectrum; the
    Nyquist modes (not uniquely defined on the coarse grid) are dropped. Returns
    ``[N, *(factor * n_i), C]``; the coarse points of the result equal ``u`` exactly
    when ``u`` has no Nyquist content.
    """
    if factor == 1:
        return np.array(u, dtype=np.float64)
    axes = tuple(range(1, ndim + 1))
    shape = u.shape[1:1 + ndim]
    import scipy.fft as sfft  # on first use: listing families stays fast

    uh = sfft.rfftn(u, axes=axes)
    fine = tuple(factor * n for n in shape)
    out = np.zeros((u.shape[0], *fine[:-1], fine[-1] // 2 + 1, u.shape[-1]), complex)
    last = shape[-1] // 2  # rfft axis: keep m = 0 .. n/2 - 1
    if ndim == 1:
        out[:, :last] = uh[:, :last]
    else:
        h = shape[0] // 2
        out[:, :h, :last] = uh[:, :h, :last]
        out[:, -(h - 1):, :last] = uh[:, -(h - 1):, :last]
    return sfft.irfftn(out, s=fine, axes=axes) * factor**ndim


def prolong_cells(u: np.ndarray, ndim: int, factor: int) -> np.ndarray:
    """Piecewise-constant prolongation ``[N, *space, C]`` -> ``[N, *(factor n_i), C]``.

    Each stored point ``x_i`` stands for the cell ``[x_i - dx/2, x_i + dx/2)``; a fine
    point inside a cell takes its value, and (for even ``factor``) a fine point on a
    cell edge takes the mean of the two cells (the mean of four at a 2D corner), so
    that the fine-grid samples converge to the cell function at second order.
    """
    out = np.asarray(u, dtype=np.float64)
    for axis in range(1, ndim + 1):
        n = out.shape[axis]
        j = np.arange(factor * n)
        right = ((j + factor // 2) // factor) % n
        on_edge = (factor % 2 == 0) & ((j + factor // 2) % factor == 0)
        left = np.where(on_edge, (right - 1) % n, right)
        out = 0.5 * (np.take(out, left, axis=axis) + np.take(out, right, axis=axis))
    return out


class RefinedSpectralFamily(SpectralPdeFamily):
    """A :class:`~scimeta.pde.SpectralPdeFamily` that stores its declared grid but
    solves on ``refine`` times as many points per axis (see the module docstring).

    Overrides the solve grid (:meth:`fourier_grid`) and the hooks :meth:`prolong`
    and :meth:`restrict` of the shared time loop; ``observe`` is inherited.
    """

    #: Fine points per stored point along each axis (1: solve on the stored grid).
    refine: ClassVar[int] = 1
    #: How stored initial states are carried to the fine grid, one of PROLONGATIONS.
    prolongation: ClassVar[str] = "fourier"

    def __init__(self, shape=None, max_step=None, refine: int | None = None) -> None:
        super().__init__(shape, max_step)
        if refine is not None:
            if int(refine) != refine or refine < 1:
                raise ConfigError(f"refine must be a positive integer, got {refine}")
            self.refine = int(refine)  # type: ignore[misc]  # instance overrides class default
        if self.prolongation not in PROLONGATIONS:
            raise ConfigError(f"prolongation={self.prolongation!r}; allowed: "
                              f"{', '.join(PROLONGATIONS)}")

    def fourier_grid(self) -> FourierGrid:
        """The *solver* grid: ``refine * shape`` points per axis."""
        lows = [lo for lo, _ in self.domain.values()]
        return FourierGrid([self.refine * self.shape[a] for a in self.axes], self.lengths, lows)

    def prolong(self, y0: np.ndarray) -> np.ndarray:
        """Initial states ``[N, *space, C]`` on the stored grid -> the solver grid."""
        rule = prolong_cells if self.prolongation == "cells" else prolong_fourier
        return rule(y0, len(self.axes), self.refine)

    def restrict(self, fields: np.ndarray) -> np.ndarray:
        """Fields ``[N, T, *fine, C]`` -> values at the stored points ``[N, T, *space, C]``."""
        sl = (slice(None), slice(None)) + (slice(None, None, self.refine),) * len(self.axes)
        return np.ascontiguousarray(fields[sl])
