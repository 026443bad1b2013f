"""Fixed affine input/output scaling around a surrogate network."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Rescaled(nn.Module):
    """``net`` seen through fixed affine maps: inputs to [-1, 1], outputs de-normalized.

    forward(x) = net(x · x_scale + x_shift) · y_scale + y_shift with
    x_scale = 2 / (hi − lo), x_shift = −2 lo / (hi − lo) − 1, for x ``[..., in_dim]`` in
    physical units, so derivatives taken for physics losses are with respect to
    physical coordinates and losses are in physical units. The maps are buffers:
    they are not meta-learned. The hand-batched MAML path supports this wrapper.
    """

    x_scale: torch.Tensor
    x_shift: torch.Tensor
    y_shift: torch.Tensor
    y_scale: torch.Tensor

    def __init__(self, net: nn.Module, lo: Sequence[float], hi: Sequence[float],
                 y_shift: Sequence[float], y_scale: Sequence[float],
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.net = net
        dtype = dtype or torch.get_default_dtype()
        lo_t = torch.as_tensor(lo, dtype=torch.float64)
        hi_t = torch.as_tensor(hi, dtype=torch.float64)
        self.register_buffer("x_scale", (2.0 / (hi_t - lo_t)).to(dtype))
        self.register_buffer("x_shift", (-2.0 * lo_t / (hi_t - lo_t) - 1.0).to(dtype))
        self.register_buffer("y_shift", torch.as_tensor(y_shift, dtype=dtype))
        self.register_buffer("y_scale", torch.as_tensor(y_scale, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * self.x_scale + self.x_shift) * self.y_scale + self.y_shift
