"""A Fourier neural operator (FNO) vector field for 2-D periodic fields.

The architecture of Li et al. 2021 ("Fourier Neural Operator for Parametric Partial
Differential Equations", arXiv:2010.08895), the field LEADS used for Navier-Stokes
(``FNO2d(modes 6, 6, width 10)``): a pointwise lift to ``width`` channels, ``layers``
Fourier layers ``x -> act(K x + W x)`` (no activation after the last), a pointwise
head ``width -> head -> channels``. ``K`` multiplies the lowest Fourier modes
(``-modes[0] <= m_1 < modes[0]`` along H, ``0 <= m_2 < modes[1]`` along W,
the FNO code's band) by learned complex
matrices and drops the others; ``W`` is a 1 x 1 convolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ._activations import check_dim, make_activation
from ._conv_field import GridVectorField

#: coordinate channels :class:`FourierVectorField` can append
COORDS = ("periodic", "linear", "none")


class SpectralConv2d(nn.Module):
    """``K``: keep the Fourier modes ``-m1 <= m_1 < m1``, ``0 <= m_2 < m2`` of each input
    channel, mix channels by a learned complex matrix per mode, drop the rest.

    x ``[B, in, H, W]`` -> ``[B, out, H, W]``, real. The complex weights are stored as
    real tensors ``[2 (m_1 >= 0 | m_1 < 0), in, out, m1, m2, 2 (re, im)]`` so that
    every parameter is real (Adam, ``torch.func`` and float64 checks treat them like
    any other). Needs ``2 m1 <= H`` and ``m2 <= W // 2 + 1``.
    """

    def __init__(self, in_channels: int, out_channels: int, modes: tuple[int, int]) -> None:
        super().__init__()
        self.modes = modes
        scale = 1.0 / (in_channels * out_channels)
        self.weight = nn.Parameter(scale * torch.rand(2, in_channels, out_channels,
                                                      *modes, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m1, m2 = self.modes
        h, w = x.shape[-2:]
        xh = torch.fft.rfft2(x)                                    # [B, in, H, W//2+1]
        wc = torch.view_as_complex(self.weight.to(x.dtype))        # [2, in, out, m1, m2]
        low = torch.einsum("bixy,ioxy->boxy", xh[..., :m1, :m2], wc[0])
        high = torch.einsum("bixy,ioxy->boxy", xh[..., h - m1:, :m2], wc[1])
        rows = [low, xh.new_zeros(*low.shape[:2], h - 2 * m1, m2), high]
        out = torch.cat(rows, dim=-2)                              # [B, out, H, m2]
        out = torch.cat([out, xh.new_zeros(*out.shape[:3], w // 2 + 1 - m2)], dim=-1)
        return torch.fft.irfft2(out, s=(h, w))


class FourierVectorField(GridVectorField):
    """An FNO vector field ``f(y[, p]) -> dy/dt`` on a periodic 2-D grid.

    Inputs per point: the ``channels`` state values, ``param_dim`` parameters
    (constant channels, e.g. a learned context) and coordinate channels: ``coords =
    "periodic"`` (default) appends sin and cos of 2 pi x / H and 2 pi y / W (continuous
    across the periodic boundary), ``"linear"`` appends i / H and j / W (the FNO
    code's grid, in [0, 1)), ``"none"`` nothing (then the field is exactly
    translation-equivariant on the torus). Defaults: LEADS's Navier-Stokes field
    (modes (6, 6), width 10, 4 Fourier layers, head 128, Swish = SiLU). Shapes and
    layouts as :class:`~scimeta.nn.ConvVectorField`; the output is multiplied by
    ``scale``.
    """

    grid: torch.Tensor  # coordinate channels [0, 2 or 4, H, W] (a buffer)

    def __init__(
        self,
        channels: int,
        shape: Sequence[int],
        param_dim: int = 0,
        modes: Sequence[int] = (6, 6),
        width: int = 10,
        layers: int = 4,
        head: int = 128,
        activation: str = "silu",
        coords: str = "periodic",
        scale: float = 1.0,
        layout: str = "flat",
    ) -> None:
        super().__init__(channels, shape, param_dim, activation, scale, layout)
        width, layers, head = (check_dim(n, v) for n, v in
                               (("width", width), ("layers", layers), ("head", head)))
        h, w = self.shape
        m = tuple(modes) if isinstance(modes, Sequence) else ()
        if len(m) != 2 or any(not isinstance(k, int) or isinstance(k, bool) or k < 1
                              for k in m) or 2 * m[0] > h or m[1] > w // 2 + 1:
            raise ConfigError(f"modes={modes!r} is not allowed for shape {self.shape}; give "
                              f"two ints m1, m2 >= 1 with 2 m1 <= {h} and m2 <= {w // 2 + 1}")
        if coords not in COORDS:
            raise ConfigError(f"coords={coords!r} is not allowed; use one of "
                              f"{', '.join(COORDS)}")
        self.modes: tuple[int, int] = (m[0], m[1])
        self.coords = coords
        grid = _coordinate_channels(coords, h, w)
        self.register_buffer("grid", grid, persistent=False)
        n_in = channels + param_dim + grid.shape[0]
        self.lift = nn.Conv2d(n_in, width, 1)
        self.spectral = nn.ModuleList(SpectralConv2d(width, width, self.modes)
                                      for _ in range(layers))
        self.pointwise = nn.ModuleList(nn.Conv2d(width, width, 1) for _ in range(layers))
        self.act = make_activation(activation)
        self.head = nn.Sequential(nn.Conv2d(width, head, 1), make_activation(activation),
                                  nn.Conv2d(head, channels, 1))

    def body(self, x: torch.Tensor) -> torch.Tensor:
        if self.grid.shape[0]:
            g = self.grid.to(x.dtype).expand(x.shape[0], -1, -1, -1)
            x = torch.cat([x, g], dim=1)
        z = self.lift(x)
        last = len(self.spectral) - 1
        for i, (k, w) in enumerate(zip(self.spectral, self.pointwise, strict=True)):
            z = k(z) + w(z)
            if i < last:
                z = self.act(z)
        return self.head(z)

    def extra_repr(self) -> str:
        return (f"shape={self.shape}, modes={self.modes}, coords={self.coords!r}, "
                f"layout={self.layout!r}, scale={self.scale:g}")


def _coordinate_channels(coords: str, h: int, w: int) -> torch.Tensor:
    """The coordinate channels ``[0, 2 or 4, H, W]`` of ``coords`` (float64)."""
    i = torch.arange(h, dtype=torch.float64)[:, None].expand(h, w) / h
    j = torch.arange(w, dtype=torch.float64)[None, :].expand(h, w) / w
    if coords == "linear":
        return torch.stack([i, j])
    if coords == "periodic":
        a, b = 2 * torch.pi * i, 2 * torch.pi * j
        return torch.stack([a.sin(), a.cos(), b.sin(), b.cos()])
    return torch.zeros(0, h, w, dtype=torch.float64)
