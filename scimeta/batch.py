"""The tensor container that flows from the data readers into the meta-learners.

It lives outside both ``scimeta.data`` and ``scimeta.meta`` so that neither
depends on the other; each re-exports it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch


class TaskBatch(NamedTuple):
    """A meta-batch of B tasks.

    support_x ``[B, K, d_in]``, support_y ``[B, K, d_out]``, query_x ``[B, Q, d_in]``,
    query_y ``[B, Q, d_out]``; optional collocation_x ``[B, C, d_in]`` (inputs where
    a physics residual is evaluated) and params ``[B, P]`` (each task's physical
    parameters, for physics-informed losses and diagnostics). Inputs are the
    coordinates (t[, x, y]) in the family's units; outputs are state channels.
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    collocation_x: torch.Tensor | None = None
    params: torch.Tensor | None = None

    def apply(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> TaskBatch:
        """``fn`` applied to every tensor (``None`` fields stay ``None``)."""
        out = [None if v is None else fn(v) for v in self]
        return TaskBatch(*out)  # type: ignore[arg-type]

    def to(self, *args: Any, **kwargs: Any) -> TaskBatch:
        """Move/cast every tensor (``None`` fields stay ``None``)."""
        return self.apply(lambda v: v.to(*args, **kwargs))

    def tasks(self, index: slice | torch.Tensor | Sequence[int]) -> TaskBatch:
        """The tasks ``index`` of every tensor (a slice keeps views)."""
        return self.apply(lambda v: v[index])

    @property
    def num_tasks(self) -> int:
        return self.support_x.shape[0]
