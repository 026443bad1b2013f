"""Activation functions by name, shared by the surrogate networks."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError

ACTIVATIONS = ("tanh", "silu", "relu", "sine")


class Sine(nn.Module):
    """``sin(omega0 * x)``, the SIREN activation (Sitzmann et al., 2020)."""

    def __init__(self, omega0: float = 30.0) -> None:
        super().__init__()
        self.omega0 = float(omega0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.omega0 * x)

    def extra_repr(self) -> str:
        return f"omega0={self.omega0}"


def make_activation(name: str, omega0: float = 30.0) -> nn.Module:
    """A fresh activation module for ``name`` (one of :data:`ACTIVATIONS`)."""
    if name == "tanh":
        return nn.Tanh()
    if name == "silu":
        return nn.SiLU()
    if name == "relu":
        return nn.ReLU()
    if name == "sine":
        return Sine(omega0)
    raise ConfigError(f"activation={name!r} is not supported; allowed: {', '.join(ACTIVATIONS)}")


def check_hidden(hidden: object) -> tuple[int, ...]:
    """Validate a tuple of hidden widths (each a positive int)."""
    try:
        widths: tuple = tuple(hidden)  # type: ignore[arg-type]
    except TypeError:
        raise ConfigError(f"hidden={hidden!r} must be a sequence of positive ints") from None
    if any(not isinstance(w, int) or isinstance(w, bool) or w < 1 for w in widths):
        raise ConfigError(f"hidden={hidden!r} must be a sequence of positive ints")
    return widths


def check_dim(name: str, value: object, minimum: int = 1) -> int:
    """Validate an integer dimension argument."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{name}={value!r} must be an int >= {minimum}")
    return value
