"""Coordinate MLPs: (t[, x, y]) -> state, optionally with Fourier features, a periodic
embedding of the spatial inputs, or SIREN."""

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
    (a buffer, not trained; Tancik et al., 2020). ``periods`` (one entry per input
    column: a period, in the units the network sees, or None) with ``periodic_modes
    = M > 0`` instead maps each periodic column x_c to ``sin(2π k x_c / L_c)``,
    ``cos(2π k x_c / L_c)``, k = 1..M, and passes the other columns (time) through:
    the network is then exactly periodic in x_c, as the solutions of the periodic PDE
    families are (a fixed map, not trained). Both maps have the form
    ``[x[keep], sin(x F), cos(x F)]`` (:meth:`embedding`), which the hand-batched
    paths differentiate with respect to the inputs. ``context_dim = d > 0`` appends a
trained vector ``context`` ``[d]`` (zeros at first) to the first layer's input: the
per-task code that context adaptation (CAVIA, Zintgraf et al. 2019) adapts alone in
its inner loop. ``activation="sine"`` gives a
    SIREN: ``sin(omega0 z)`` activations with the initialisation of Sitzmann et
    al. (2020), first layer ``U(-1/n, 1/n)`` and later ones
    ``U(-sqrt(6/n)/omega0, sqrt(6/n)/omega0)`` for fan-in ``n``.
    """

    fourier_B: torch.Tensor
    periodic_F: torch.Tensor

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden: Sequence[int] = (64, 64),
        activation: str = "tanh",
        fourier_features: int = 0,
        fourier_scale: float = 1.0,
        omega0: float = 30.0,
        periods: Sequence[float | None] | None = None,
        periodic_modes: int = 0,
        context_dim: int = 0,
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
        self.periodic_modes = check_dim("periodic_modes", periodic_modes, minimum=0)
        self.keep: tuple[int, ...] = tuple(range(in_dim))
        first = in_dim
        if self.fourier_features:
            if self.periodic_modes:
                raise ConfigError("fourier_features and periodic_modes exclude each other; "
                                  "set one of them to 0")
            self.register_buffer(
                "fourier_B", torch.randn(in_dim, self.fourier_features) * float(fourier_scale)
            )
            self.keep = ()
            first = 2 * self.fourier_features
        elif self.periodic_modes:
            freq = _periodic_frequencies(in_dim, periods, self.periodic_modes)
            self.register_buffer("periodic_F", freq)
            self.keep = tuple(c for c in range(in_dim) if not freq[c].any())
            first = len(self.keep) + 2 * freq.shape[1]
        self.context_dim = check_dim("context_dim", context_dim, minimum=0)
        if self.context_dim:
            self.context = nn.Parameter(torch.zeros(self.context_dim))
            first += self.context_dim
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

    def embedding(self) -> torch.Tensor | None:
        """``F`` ``[in_dim, m]`` of the fixed input map ``[x[keep], sin(x F), cos(x F)]``
        (columns ``self.keep`` pass through), or None when the input goes in as it is."""
        if self.fourier_features:
            return (2 * math.pi) * self.fourier_B
        if self.periodic_modes:
            return self.periodic_F
        return None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The network's first-layer input ``[..., n_features]``: x itself, or its map."""
        freq = self.embedding()
        if freq is None:
            return x
        z = x @ freq.to(x.dtype)
        parts = [x[..., list(self.keep)]] if self.keep else []
        return torch.cat([*parts, torch.sin(z), torch.cos(z)], dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x ``[..., in_dim]`` -> ``[..., out_dim]``."""
        h = self.features(x)
        if self.context_dim:
            h = torch.cat([h, self.context.to(h.dtype).expand(*h.shape[:-1], -1)], dim=-1)
        return self.net(h)


def _periodic_frequencies(in_dim: int, periods: Sequence[float | None] | None,
                          modes: int) -> torch.Tensor:
    """``F`` ``[in_dim, n_periodic · modes]``: column c's block holds 2π k / L_c, k = 1..M."""
    if periods is None or len(periods) != in_dim:
        raise ConfigError(f"periodic_modes={modes} needs periods, one entry (a period or "
                          f"None) per input column ({in_dim}); got {periods!r}")
    cols = [c for c, period in enumerate(periods) if period is not None]
    for c in cols:
        period = periods[c]
        if not (isinstance(period, (int, float)) and math.isfinite(period) and period > 0):
            raise ConfigError(f"periods[{c}]={period!r} must be a finite number > 0 or None")
    if not cols:
        raise ConfigError(f"periodic_modes={modes} but no input column is periodic "
                          f"(periods={list(periods)!r}); set periodic_modes = 0")
    freq = torch.zeros(in_dim, len(cols) * modes, dtype=torch.float64)
    k = torch.arange(1, modes + 1, dtype=torch.float64)
    for j, c in enumerate(cols):
        freq[c, j * modes:(j + 1) * modes] = 2 * math.pi * k / float(periods[c])  # type: ignore[arg-type]
    return freq  # float64, so a float64 network is periodic to round-off (module.to() casts)
