"""Vector-field networks and a differentiable fixed-step RK4 rollout (forecasting)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ._activations import ACTIVATIONS, check_dim, check_hidden, make_activation


class VectorFieldNet(nn.Module):
    """An MLP vector field ``f(y[, p]) -> dy/dt`` for learned dynamics.

    y ``[..., state_dim]``, optional physical parameters p ``[..., param_dim]``
    (concatenated to the input when ``param_dim > 0``); output ``[..., state_dim]``.
    """

    def __init__(
        self,
        state_dim: int,
        param_dim: int = 0,
        hidden: Sequence[int] = (64, 64),
        activation: str = "tanh",
    ) -> None:
        super().__init__()
        self.state_dim = check_dim("state_dim", state_dim)
        self.param_dim = check_dim("param_dim", param_dim, minimum=0)
        widths = check_hidden(hidden)
        if activation not in ACTIVATIONS:
            raise ConfigError(
                f"activation={activation!r} is not supported; allowed: {', '.join(ACTIVATIONS)}"
            )
        layers: list[nn.Module] = []
        prev = state_dim + param_dim
        for w in widths:
            layers += [nn.Linear(prev, w), make_activation(activation)]
            prev = w
        layers.append(nn.Linear(prev, state_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, y: torch.Tensor, params: torch.Tensor | None = None) -> torch.Tensor:
        """y ``[..., state_dim]`` (and params ``[..., param_dim]``) -> ``[..., state_dim]``."""
        if self.param_dim:
            if params is None:
                raise ConfigError(
                    f"VectorFieldNet was built with param_dim={self.param_dim}; pass params"
                )
            params = params.to(y.dtype).expand(*y.shape[:-1], self.param_dim)
            y = torch.cat([y, params], dim=-1)
        elif params is not None:
            raise ConfigError("VectorFieldNet was built with param_dim=0; params must be None")
        return self.net(y)


Field = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: ``restart(i, y)``: the state output interval i starts from, given the prediction y
Restart = Callable[[int, torch.Tensor], torch.Tensor]


def _rk4_step(f: Field, s: torch.Tensor, y: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    k1 = f(s, y)
    k2 = f(s + h / 2, y + (h / 2) * k1)
    k3 = f(s + h / 2, y + (h / 2) * k2)
    k4 = f(s + h, y + h * k3)
    return y + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)


def _euler_step(f: Field, s: torch.Tensor, y: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    return y + h * f(s, y)


def _rollout(step: Callable[[Field, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
             f: Field, y0: torch.Tensor, t: torch.Tensor, substeps: int,
             restart: Restart | None = None) -> torch.Tensor:
    """``substeps`` equal steps of ``step`` per interval of ``t``; ``[..., T, C]``
    (``restart``: as :func:`rk4_rollout`'s)."""
    if t.dim() != 1 or t.shape[0] < 1:
        raise ConfigError(f"t must be a 1-d tensor of times, got shape {tuple(t.shape)}")
    check_dim("substeps", substeps)
    ys = [y0]
    y = y0
    for i in range(t.shape[0] - 1):
        if restart is not None:
            y = restart(i, y)
        h = (t[i + 1] - t[i]) / substeps
        s = t[i]
        for _ in range(substeps):
            y = step(f, s, y, h)
            s = s + h
        ys.append(y)
    return torch.stack(ys, dim=-2)


def rk4_rollout(f: Field, y0: torch.Tensor, t: torch.Tensor, substeps: int = 1,
                restart: Restart | None = None) -> torch.Tensor:
    """Integrate ``dy/dt = f(t, y)`` with classical RK4 on the grid ``t``.

    y0 ``[..., C]``, t ``[T]`` increasing (``t[0]`` is the initial time); each
    interval is split into ``substeps`` equal RK4 steps. Returns ``[..., T, C]``
    with ``y0`` at index 0. Pure torch ops, so it is differentiable (also
    twice, for MAML) and works under ``torch.func`` transforms. ``restart(i, y)``,
    when given, is the state interval i starts from instead of the prediction y
    (teacher forcing; the state reported at ``t[i]`` stays y).
    """
    return _rollout(_rk4_step, f, y0, t, substeps, restart)


def euler_rollout(f: Field, y0: torch.Tensor, t: torch.Tensor,
                  substeps: int = 1, restart: Restart | None = None) -> torch.Tensor:
    """As :func:`rk4_rollout` with forward Euler steps ``y + h f(s, y)`` (first order;
    the rollout LEADS used for Navier-Stokes, where the learned field is the whole
    increment over an output interval)."""
    return _rollout(_euler_step, f, y0, t, substeps, restart)


#: rollout rules :class:`Forecaster` accepts
ROLLOUTS = {"rk4": rk4_rollout, "euler": euler_rollout}


class Forecaster(nn.Module):
    """Initial state -> trajectory, by an RK4 rollout of a vector-field network.

    For the forecasting setting (adapt on trajectories of a new regime, forecast
    from new initial states) with the meta-learners: input y0 ``[N, C]``, output
    ``[N, T * C]`` (the trajectory on ``t`` flattened time-major, including y0)
    or ``[N, T, C]`` with ``flatten=False``. ``field`` is called as ``field(y)``.
    ``method`` is the rollout rule, ``"rk4"`` (default) or ``"euler"``, with
    ``substeps`` steps per output interval.
    """

    t: torch.Tensor

    def __init__(self, field: nn.Module, t: torch.Tensor, substeps: int = 1,
                 flatten: bool = True, method: str = "rk4") -> None:
        super().__init__()
        if method not in ROLLOUTS:
            raise ConfigError(f"method={method!r} is not allowed; use one of "
                              f"{', '.join(ROLLOUTS)}")
        self.method = method
        self.field = field
        self.register_buffer("t", torch.as_tensor(t))
        self.substeps = check_dim("substeps", substeps)
        self.flatten = bool(flatten)

    def forward(self, y0: torch.Tensor, restart: Restart | None = None) -> torch.Tensor:
        """y0 ``[N, C]`` -> ``[N, T*C]`` (or ``[N, T, C]``); ``restart(i, y)``: the state
        interval i starts from instead of the prediction y (teacher forcing, see
        :func:`rk4_rollout`)."""
        traj = ROLLOUTS[self.method](lambda _s, y: self.field(y), y0, self.t.to(y0.dtype),
                                     self.substeps, restart)
        return traj.flatten(-2) if self.flatten else traj
