"""Periodic Fourier grids in 1D and 2D: wavenumbers, transforms, dealiasing, resolution.

Physical arrays are laid out ``[N, *space, C]`` (task, grid points, channel) and
their spectra ``[N, *modes, C]`` where ``modes`` is the ``rfftn`` shape over the
space axes: ``(n_x // 2 + 1,)`` in 1D and ``(n_x, n_y // 2 + 1)`` in 2D.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import SolverInputError

#: Fraction of the resolvable wavenumbers kept by the 2/3 rule.
DEALIAS_FRACTION = 2.0 / 3.0


class FourierGrid:
    """A uniform periodic grid on ``prod_i [lo_i, lo_i + L_i)`` with ``n_i`` points per axis.

    ``lows``/``lengths`` are in the family's length unit; wavenumbers are angular,
    ``k = 2 pi m / L`` (units 1/length).
    """

    def __init__(self, shape: Sequence[int], lengths: Sequence[float],
                 lows: Sequence[float] | None = None, workers: int = 1) -> None:
        self.shape = tuple(int(n) for n in shape)
        self.lengths = tuple(float(v) for v in lengths)
        self.lows = tuple(float(v) for v in lows) if lows is not None else (0.0,) * len(shape)
        if len(self.shape) not in (1, 2):
            raise SolverInputError(f"shape must have 1 or 2 axes (1D and 2D grids), "
                                   f"got shape={self.shape}")
        for name, value in (("lengths", self.lengths), ("lows", self.lows)):
            if len(value) != len(self.shape):
                raise SolverInputError(f"{name} must have one entry per axis of "
                                       f"shape={self.shape}, got {name}={value}")
        if any(n < 4 or n % 2 for n in self.shape):
            raise SolverInputError(f"shape must hold even sizes >= 4, got shape={self.shape}")
        if not all(length > 0 and np.isfinite(length) for length in self.lengths):
            raise SolverInputError(f"lengths must be positive and finite, "
                                   f"got lengths={self.lengths}")
        self.ndim = len(self.shape)
        self.axes = tuple(range(1, self.ndim + 1))  # space axes of [N, *space, C]
        self.workers = workers
        ks = []
        for i, (n, length) in enumerate(zip(self.shape, self.lengths, strict=True)):
            last = i == self.ndim - 1
            m = np.arange(n // 2 + 1) if last else np.fft.fftfreq(n, 1.0 / n)
            shape = [1] * self.ndim
            shape[i] = len(m)
            ks.append((2 * np.pi / length * m).reshape(shape))
        #: Angular wavenumbers, one array per axis, broadcastable to ``modes``.
        self.k = tuple(ks)
        self.modes = tuple(k.shape[i] for i, k in enumerate(self.k))
        # integer mode numbers and the 2/3-rule mask
        self._m = [np.abs(k) * length / (2 * np.pi)
                   for k, length in zip(self.k, self.lengths, strict=True)]
        keep = np.ones(self.modes, dtype=bool)
        for m, n in zip(self._m, self.shape, strict=True):
            keep = keep & (m <= DEALIAS_FRACTION * (n // 2))
        self.dealias_mask = keep
        self._keep = self.expand(keep.astype(np.float64))
        self._ik = []  # i k per axis, Nyquist zeroed (odd derivatives), broadcast shape
        for axis, (m, n) in enumerate(zip(self._m, self.shape, strict=True)):
            ik = 1j * self.k[axis] * (m != n // 2)
            self._ik.append(self.expand(ik * np.ones(self.modes)))
        self._ik2 = [self.expand(-(k**2) * np.ones(self.modes)) for k in self.k]

    @property
    def spacing(self) -> tuple[float, ...]:
        return tuple(length / n for length, n in zip(self.lengths, self.shape, strict=True))

    def coords(self) -> list[np.ndarray]:
        """Grid coordinates per axis, each ``[n_i]`` (right end excluded)."""
        return [lo + length * np.arange(n) / n
                for lo, length, n in zip(self.lows, self.lengths, self.shape, strict=True)]

    def k2(self) -> np.ndarray:
        """``|k|^2`` on the modes, shape ``modes``."""
        return sum(k**2 for k in self.k) * np.ones(self.modes)

    def fft(self, u: np.ndarray) -> np.ndarray:
        """Spectrum of ``u`` ``[N, *space, C]`` (real) -> ``[N, *modes, C]`` (complex)."""
        import scipy.fft as sfft  # on first use: listing families stays fast

        if self.ndim == 1:
            return sfft.rfft(u, axis=1, workers=self.workers)
        return sfft.rfftn(u, axes=self.axes, workers=self.workers)

    def ifft(self, uh: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`fft`: ``[N, *modes, C]`` -> real ``[N, *space, C]``."""
        import scipy.fft as sfft

        if self.ndim == 1:
            return sfft.irfft(uh, self.shape[0], axis=1, workers=self.workers)
        return sfft.irfftn(uh, s=self.shape, axes=self.axes, workers=self.workers)

    def expand(self, a: np.ndarray) -> np.ndarray:
        """Reshape a per-mode array ``modes`` to broadcast against ``[N, *modes, C]``."""
        return a.reshape((1, *self.modes, 1))

    def derivative(self, uh: np.ndarray, axis: int, order: int = 1) -> np.ndarray:
        """Spectrum of the ``order``-th derivative along space axis ``axis`` (0 = x)."""
        # the Nyquist mode of an odd derivative is not representable: it is zeroed
        if order == 1:
            return uh * self._ik[axis]
        if order == 2:
            return uh * self._ik2[axis]
        if order % 2:
            return uh * self._ik[axis] * self._ik2[axis] ** ((order - 1) // 2)
        return uh * self._ik2[axis] ** (order // 2)

    def dealias(self, uh: np.ndarray) -> np.ndarray:
        """Zero the modes outside the 2/3-rule band."""
        return uh * self._keep

    def tail_fraction(self, u: np.ndarray, band: float = DEALIAS_FRACTION) -> np.ndarray:
        """Share of spectral energy in the top third of the resolved band.

        ``u`` ``[N, ..., *space, C]`` (any leading axes, e.g. time). The resolved
        band is ``|m_i| <= band * n_i / 2`` per axis (the 2/3-rule band by
        default); its top third is ``max_i |m_i| / (band n_i / 2) > 2/3``.
        Returns ``[N]``: the largest share over all other leading axes and
        channels (energy includes the mean mode). Non-finite input gives NaN.
        """
        lead = u.shape[: u.ndim - self.ndim - 1]
        flat = u.reshape((-1, *self.shape, u.shape[-1]))
        with np.errstate(all="ignore"):
            e = np.abs(self.fft(flat)) ** 2
            weight = np.ones(self.modes)
            if self.ndim >= 1:  # rfft halves the last axis: count the conjugates twice
                last = self._m[-1]
                weight = weight * np.where((last > 0) & (last < self.shape[-1] // 2), 2.0, 1.0)
            rel = np.zeros(self.modes)
            for m, n in zip(self._m, self.shape, strict=True):
                rel = np.maximum(rel, m / (band * n / 2))
            inside = rel <= 1.0
            top = inside & (rel > 2.0 / 3.0)
            w = self.expand(weight)
            total = np.sum(e * w * self.expand(inside), axis=self.axes)
            high = np.sum(e * w * self.expand(top), axis=self.axes)
            share = np.where(total > 0, high / np.where(total > 0, total, 1.0), 0.0)
            share = np.where(np.isfinite(total), share, np.nan)
        share = share.reshape((*lead, -1))
        out = np.max(share.reshape(lead[0] if lead else 1, -1), axis=1)
        return out
