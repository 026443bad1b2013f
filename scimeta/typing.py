"""Type aliases shared across scimeta.

Shapes are written in docstrings as ``[B, K, d]``: B tasks, K support (or Q
query, C collocation, N generic) points, d input or output channels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:  # torch is imported lazily by the CLI's fast paths
    import numpy as np
    import torch

#: A functional parameter dict: ``named_parameters`` names (and learned inner
#: rates under ``"inner_lr."``) to tensors; batched over tasks: ``[B, *shape]``.
Params: TypeAlias = "dict[str, torch.Tensor]"
#: A read-only view of a parameter dict.
ParamsLike: TypeAlias = "Mapping[str, torch.Tensor]"
#: Gradients over a parameter dict; ``None`` where the loss does not depend on an entry.
Grads: TypeAlias = "dict[str, torch.Tensor | None]"
#: A loss ``(pred [N, d_out], target [N, d_out]) -> scalar``.
LossFn: TypeAlias = "Callable[[torch.Tensor, torch.Tensor], torch.Tensor]"
#: Task or point indices: a sequence of ints or an integer numpy array.
Indices: TypeAlias = "Sequence[int] | np.ndarray"
#: A float64 numpy array (solver states, parameters).
FloatArray: TypeAlias = "np.ndarray"

__all__ = ["FloatArray", "Grads", "Indices", "LossFn", "Params", "ParamsLike"]
