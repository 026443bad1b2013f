"""Random initial fields of the PDE families: sine series and Gaussian random fields.

Each rule draws an initial state ``[*space, C]`` on the family's grid from a numpy
generator; :mod:`scimeta.pde` re-exports them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .solvers.fourier import FourierGrid


@dataclass(frozen=True)
class SineSeries:
    """Sum of random sinusoids on a periodic box, one independent draw per channel.

    ``u0(x) = offset + sum_{i < n_waves} A_i sin(2 pi m_i . (x - lo) / L + phi_i)`` with
    integer wave vectors ``m_i`` (1D: ``m ~ U{1..max_mode}``; 2D: each component
    ``~ U{-max_mode..max_mode}``, not both 0), ``A_i ~ U(0, amplitude)`` and
    ``phi_i ~ U(0, 2 pi)``. With ``unit_interval=True`` the draw is mapped affinely
    onto ``[0, 1]`` (for densities such as Fisher-KPP). Draws depend only on ``rng``.
    """

    n_waves: int = 2
    max_mode: int = 4
    amplitude: float = 1.0
    offset: float = 0.0
    unit_interval: bool = False

    def sample(self, rng: np.random.Generator, coords: Sequence[np.ndarray],
               lengths: Sequence[float], channels: int = 1) -> np.ndarray:
        """One draw on the grid ``coords`` (per axis ``[n_i]``), shape ``[*space, C]``."""
        mesh = np.meshgrid(*coords, indexing="ij")
        fields = []
        for _ in range(channels):
            u = np.full(mesh[0].shape, float(self.offset))
            for _ in range(self.n_waves):
                if len(coords) == 1:
                    m = [int(rng.integers(1, self.max_mode + 1))]
                else:
                    m = [0, 0]
                    while m == [0, 0]:
                        m = [int(v) for v in rng.integers(-self.max_mode, self.max_mode + 1,
                                                          size=2)]
                amp = rng.uniform(0.0, self.amplitude)
                phase = rng.uniform(0.0, 2 * np.pi)
                arg = sum(2 * np.pi * mi * (x - c[0]) / length
                          for mi, x, c, length in zip(m, mesh, coords, lengths, strict=True))
                u = u + amp * np.sin(arg + phase)
            if self.unit_interval:
                u = (u - u.min()) / max(float(np.ptp(u)), 1e-300)
            fields.append(u)
        return np.stack(fields, axis=-1)


@dataclass(frozen=True)
class GaussianRandomField:
    """Periodic Gaussian random field with squared-exponential spectrum.

    Fourier coefficients are independent complex normals with variance
    ``exp(-(|k| length_scale)^2 / 2)`` (``k`` angular wavenumber, ``length_scale`` in
    the family's length unit), mean mode zero; each draw is rescaled to RMS
    ``amplitude`` exactly and shifted by ``offset``. Draws depend only on ``rng``.
    """

    length_scale: float = 0.1
    amplitude: float = 1.0
    offset: float = 0.0

    def sample(self, rng: np.random.Generator, coords: Sequence[np.ndarray],
               lengths: Sequence[float], channels: int = 1) -> np.ndarray:
        grid = FourierGrid([len(c) for c in coords], lengths)
        shape = (1, *grid.modes, channels)
        coef = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
        coef = coef * grid.expand(np.exp(-grid.k2() * self.length_scale**2 / 4))
        coef[(0,) * (1 + grid.ndim)] = 0.0
        u = grid.ifft(coef)[0]
        rms = np.sqrt(np.mean(u**2, axis=tuple(range(grid.ndim)), keepdims=True))
        return self.offset + self.amplitude * u / np.where(rms > 0, rms, 1.0)


InitialCondition = SineSeries | GaussianRandomField
