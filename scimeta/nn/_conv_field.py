"""A convolutional vector field for 2-D periodic fields (grid PDEs such as Gray-Scott)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ._activations import ACTIVATIONS, check_dim, check_hidden, make_activation

#: input layouts :class:`ConvVectorField` accepts
LAYOUTS = ("flat", "grid")


class GridVectorField(nn.Module):
    """Shared plumbing of the vector fields on a periodic 2-D grid.

    Validates ``channels``, ``shape`` (H, W), ``param_dim``, ``activation``, ``scale``
    and ``layout``; :meth:`forward` turns y into ``[B, C (+ param_dim), H, W]``
    (parameters as constant channels), calls the subclass's :meth:`body` and returns
    ``body(x) * scale`` in y's layout. See :class:`ConvVectorField` for the layouts.
    """

    def __init__(self, channels: int, shape: Sequence[int], param_dim: int = 0,
                 activation: str = "silu", scale: float = 1.0, layout: str = "flat") -> None:
        super().__init__()
        self.channels = check_dim("channels", channels)
        self.param_dim = check_dim("param_dim", param_dim, minimum=0)
        try:
            grid = tuple(shape)
        except TypeError:
            grid = ()
        if len(grid) != 2 or any(
                not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in grid):
            raise ConfigError(f"shape={shape!r} is not allowed; give the grid as two "
                              "positive ints (H, W)")
        self.shape: tuple[int, int] = (grid[0], grid[1])
        if activation not in ACTIVATIONS:
            raise ConfigError(f"activation={activation!r} is not supported; allowed: "
                              f"{', '.join(ACTIVATIONS)}")
        if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not (
                0 < float(scale) < float("inf")):
            raise ConfigError(f"scale={scale!r} is not allowed; it must be a finite "
                              "number > 0")
        if layout not in LAYOUTS:
            raise ConfigError(f"layout={layout!r} is not allowed; use one of "
                              f"{', '.join(LAYOUTS)}")
        self.scale = float(scale)
        self.layout = layout

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C + param_dim, H, W]`` -> ``[B, C, H, W]`` (before ``scale``)."""
        raise NotImplementedError

    @property
    def state_dim(self) -> int:
        """Size of the flat state, ``H * W * C``."""
        return self.shape[0] * self.shape[1] * self.channels

    def _to_grid(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Size]:
        """y in the layout -> ``[B, C, H, W]`` and the leading shape."""
        h, w = self.shape
        c = self.channels
        if self.layout == "flat":
            if y.dim() < 1 or y.shape[-1] != h * w * c:
                raise ConfigError(f"y has shape {tuple(y.shape)}; layout 'flat' needs "
                                  f"[..., {h * w * c}] (H * W * C = {h} * {w} * {c})")
            lead = y.shape[:-1]
            return y.reshape(-1, h, w, c).permute(0, 3, 1, 2), lead
        if y.dim() < 3 or tuple(y.shape[-3:]) != (c, h, w):
            raise ConfigError(f"y has shape {tuple(y.shape)}; layout 'grid' needs "
                              f"[..., {c}, {h}, {w}] (C, H, W)")
        lead = y.shape[:-3]
        return y.reshape(-1, c, h, w), lead

    def forward(self, y: torch.Tensor, params: torch.Tensor | None = None) -> torch.Tensor:
        """y (``[..., H*W*C]`` or ``[..., C, H, W]``), params ``[..., param_dim]`` ->
        ``dy/dt`` of y's shape."""
        x, lead = self._to_grid(y)
        if self.param_dim:
            if params is None:
                raise ConfigError(f"{type(self).__name__} was built with param_dim="
                                  f"{self.param_dim}; pass params")
            p = params.to(x.dtype).expand(*lead, self.param_dim).reshape(-1, self.param_dim)
            x = torch.cat([x, p[:, :, None, None].expand(-1, -1, *self.shape)], dim=1)
        elif params is not None:
            raise ConfigError(f"{type(self).__name__} was built with param_dim=0; "
                              "params must be None")
        out = self.body(x) * self.scale
        if self.layout == "flat":
            return out.permute(0, 2, 3, 1).reshape(y.shape)
        return out.reshape(y.shape)


class ConvVectorField(GridVectorField):
    """A CNN vector field ``f(y[, p]) -> dy/dt`` on a periodic 2-D grid.

    Layers: ``len(hidden) + 1`` convolutions of ``kernel_size`` x ``kernel_size``
    (odd) with circular (periodic) padding, widths ``channels -> hidden... ->
    channels``, an activation after every one but the last; the output is multiplied
    by ``scale`` (LEADS's ``factor``: a small scale keeps the initial field small
    against the data's time step). The defaults, four 3 x 3 layers of 64 channels,
    are LEADS's Gray-Scott network (``ConvNetEstimator``, Swish); SiLU is Swish with
    beta = 1. Every layer is translation-equivariant on the torus: rolling the input
    field rolls the output by the same shift, exactly.

    Shapes (``H, W = shape``, ``C = channels``):

    - ``layout="flat"`` (default): y ``[..., H * W * C]``, the grid flattened
      row-major with the channel fastest, i.e. a ``[..., H, W, C]`` array reshaped;
      this is the state layout of :class:`~scimeta.data.EnvironmentReader` for a
      2-D field family and what :class:`~scimeta.nn.Forecaster` rolls out.
    - ``layout="grid"``: y ``[..., C, H, W]``.

    Optional parameters (e.g. a learned context) p ``[..., param_dim]`` are appended
    as ``param_dim`` extra input channels, constant over the grid, when
    ``param_dim > 0``. The output has y's shape. Any number of leading dimensions
    (none included) is accepted; they are batched through the convolutions.
    """

    def __init__(
        self,
        channels: int,
        shape: Sequence[int],
        param_dim: int = 0,
        hidden: Sequence[int] = (64, 64, 64),
        kernel_size: int = 3,
        activation: str = "silu",
        scale: float = 1.0,
        layout: str = "flat",
    ) -> None:
        super().__init__(channels, shape, param_dim, activation, scale, layout)
        widths = check_hidden(hidden)
        if (not isinstance(kernel_size, int) or isinstance(kernel_size, bool)
                or kernel_size < 1 or kernel_size % 2 == 0):
            raise ConfigError(f"kernel_size={kernel_size!r} is not allowed; it must be an "
                              "odd int >= 1 (the padding keeps the grid size)")
        if kernel_size // 2 > min(self.shape):
            raise ConfigError(f"kernel_size={kernel_size} is too large for shape "
                              f"{self.shape}: circular padding of {kernel_size // 2} needs "
                              f"at least that many points per axis")
        layers: list[nn.Module] = []
        prev = channels + param_dim
        for w in (*widths, channels):
            layers.append(nn.Conv2d(prev, w, kernel_size, padding=kernel_size // 2,
                                    padding_mode="circular"))
            layers.append(make_activation(activation))
            prev = w
        self.net = nn.Sequential(*layers[:-1])

    def body(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def extra_repr(self) -> str:
        return f"shape={self.shape}, layout={self.layout!r}, scale={self.scale:g}"
