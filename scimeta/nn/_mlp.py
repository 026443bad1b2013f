"""Coordinate MLPs: (t[, x, y]) -> state, optionally with Fourier features or SIREN."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ._activations import ACTIVATIONS, check_dim, check_hidden, make_activation


class CoordinateMLP(nn.Module):
    """A point-wise MLP from coordinates to state channels.

    Input ``[..., in_dim]`` (t is column 0, spatial coordinates follow), output
    ``[..., out_dim]``. Layers live in ``self.net`` (an ``nn.Sequential`` of
    ``Linear`` and activation modules), so parameter names are ``net.<i>.weight``
    and ``net.<i>.bias``; the last ``Linear`` is the "head".

    ``fourier_features = m > 0`` first maps x to ``[sin(2π x B), cos(2π x B)]``
    with a fixed random ``B ~ N(0, fourier_scale²)`` of shape ``[in_dim, m]``
    (a buffer, not trained; Tancik et al., 2020). ``activation="sine"`` gives a
    SIREN: ``sin(omega0 z)`` activations with the initialisation of Sitzmann et
    al. (2020), first layer ``U(-1/n, 1/n)`` and later ones
    ``U(-sqrt(6/n)/omega0, sqrt(6/n)/omega0)`` for fan-in ``n``.
    """

    fourier_B: torch.Tensor

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden: Sequence[int] = (64, 64),
        activation: str = "tanh",
        fourier_features: int = 0,
        fourier_scale: float = 1.0,
        omega0: float = 30.0,
    ) -> None:
        super().__init__()
        self.in_dim = check_dim("in_dim", in_dim)
        self.out_dim = check_dim("out_dim", out_dim)
        widths = check_hidden(hidden)
        if activation not in ACTIVATIONS:
            raise ConfigError(
                f"activation={activation!r} is not supported; allowed: {', '.join(ACTIVATIONS)}"
            )
        self.activation = activation
        self.fourier_features = check_dim("fourier_features", fourier_features, minimum=0)
        if not (isinstance(fourier_scale, (int, float)) and fourier_scale > 0):
            raise ConfigError(f"fourier_scale={fourier_scale!r} must be a number > 0")
        if not (isinstance(omega0, (int, float)) and omega0 > 0):
            raise ConfigError(f"omega0={omega0!r} must be a number > 0")
        first = in_dim
        if self.fourier_features:
            self.register_buffer(
                "fourier_B", torch.randn(in_dim, self.fourier_features) * float(fourier_scale)
            )
            first = 2 * self.fourier_features
        layers: list[nn.Module] = []
        prev = first
        for w in widths:
            layers += [nn.Linear(prev, w), make_activation(activation, omega0)]
            prev = w
        layers.append(nn.Linear(prev, out_dim))
        self.net = nn.Sequential(*layers)
        if activation == "sine":
            self._siren_init(float(omega0))

    @torch.no_grad()
    def _siren_init(self, omega0: float) -> None:
        linears = [m for m in self.net if isinstance(m, nn.Linear)]
        for i, lin in enumerate(linears):
            n = lin.in_features
            bound = 1.0 / n if i == 0 else math.sqrt(6.0 / n) / omega0
            lin.weight.uniform_(-bound, bound)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The network's first-layer input: x itself or its Fourier features."""
        if not self.fourier_features:
            return x
        z = (2 * math.pi) * (x @ self.fourier_B.to(x.dtype))
        return torch.cat([torch.sin(z), torch.cos(z)], dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x ``[..., in_dim]`` -> ``[..., out_dim]``."""
        return self.net(self.features(x))
