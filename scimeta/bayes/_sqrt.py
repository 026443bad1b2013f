"""Square roots of posterior covariances, row block by row block.

A factor has ``n_rows`` and ``chunks(k)``, yielding ``[k', P]`` blocks (k' <= k) of a
matrix T with ``Σ = Tᵀ T``; the predictive and the samples only ever need T's rows.
The K-FAC one is :class:`~scimeta.bayes._kron.KronSqrt`.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ..errors import ConfigError
from ._curvature import point_chunks


class DenseSqrt:
    """Rows T ``[k, P]`` with ``Σ = Tᵀ T``: ``T = R⁻¹``, R the Cholesky factor of the precision."""

    def __init__(self, precision: torch.Tensor, not_pd: str) -> None:
        chol, info = torch.linalg.cholesky_ex(precision)
        if int(info) > 0:
            raise ConfigError(not_pd)
        eye = torch.eye(precision.shape[0], dtype=precision.dtype, device=precision.device)
        self.T = torch.linalg.solve_triangular(chol, eye, upper=False)
        self.n_rows = precision.shape[0]

    def chunks(self, chunk_size: int) -> Iterator[torch.Tensor]:
        for s in point_chunks(self.n_rows, chunk_size):
            yield self.T[s]


class DiagSqrt:
    """Rows of ``diag(precision^{-1/2})``, chunk by chunk (never ``[P, P]`` at once)."""

    def __init__(self, precision: torch.Tensor) -> None:
        self.scale = precision.rsqrt()
        self.n_rows = precision.shape[0]

    def chunks(self, chunk_size: int) -> Iterator[torch.Tensor]:
        for s in point_chunks(self.n_rows, chunk_size):
            rows = self.scale.new_zeros(s.stop - s.start, self.n_rows)
            idx = torch.arange(s.start, s.stop)
            rows[idx - s.start, idx] = self.scale[s]
            yield rows


__all__ = ["DenseSqrt", "DiagSqrt"]
