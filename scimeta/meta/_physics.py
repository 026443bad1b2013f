"""Physics-informed loss terms: the family's equation residual at collocation points.

Input derivatives of the network are taken with nested forward-mode ``torch.func.jvp``
per collocation point (``vmap`` over points), so they stay inside the vmapped,
second-order meta-graph and are exact (no finite differences).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from numbers import Real

import torch
from torch import nn
from torch.func import functional_call, jvp, vmap

from ..errors import ConfigError
from ..family import ProblemFamily

WHERE = ("inner", "outer", "both")

PointFn = Callable[[torch.Tensor], torch.Tensor]


def parse_derivative(name: str, coords: tuple[str, ...]) -> tuple[int, ...]:
    """Input columns of a derivative name, e.g. ``"xy"`` -> ``(1, 2)`` for coords (t, x, y).

    Coordinate names are matched greedily, longest first, so multi-letter names work.
    """
    order = sorted(range(len(coords)), key=lambda i: -len(coords[i]))
    cols: list[int] = []
    rest = name
    while rest:
        for i in order:
            if rest.startswith(coords[i]):
                cols.append(i)
                rest = rest[len(coords[i]):]
                break
        else:
            raise ConfigError(
                f"spatial derivative {name!r} is not a sequence of the coordinates {coords}"
            )
    return tuple(cols)


def _directional(f: PointFn, col: int) -> PointFn:
    def df(x: torch.Tensor) -> torch.Tensor:
        return jvp(f, (x,), (_basis(x, col),))[1]

    return df


def _nested(f: PointFn, cols: tuple[int, ...]) -> PointFn:
    for c in cols:
        f = _directional(f, c)
    return f


class PhysicsLoss:
    """``weight * mean(residual²)`` of a family's equation at collocation points.

    ``family`` is a :class:`~scimeta.family.ProblemFamily` or its registry name;
    ``where`` selects the inner (adaptation) loss, the outer (query) loss or both.
    The network maps inputs ``[N, 1 + S]`` (t in column 0, then the family's spatial
    coordinates in the order of ``family.space``) to the state ``[N, C]``. The
    residual receives ``t [N]``, ``y``/``dydt [N, C]``, the task's parameters
    ``[N, P]`` and, for PDE families, ``space=[N, S]`` and one ``d_<name> [N, C]``
    per entry of ``family.spatial_derivatives``.

    ``scale`` (``[C]``, state units per time unit, each > 0, or None): the residual of
    channel c is divided by ``scale[c]`` before squaring, so the term is
    dimensionless and one ``weight`` serves every family; use
    :func:`derivative_scale` (the spread of dy/dt over the training tasks). None
    keeps the residual in the family's units (``weight`` then carries them).

    ``extra_inputs``: the network takes this many more input columns after the
    coordinates (the parameter-conditioned surrogate's task parameters); they are
    carried through unchanged and never differentiated.
    """

    def __init__(self, family: ProblemFamily | str, weight: float = 1.0,
                 where: str = "inner", scale: Sequence[float] | torch.Tensor | None = None,
                 extra_inputs: int = 0) -> None:
        if isinstance(family, str):
            from ..registry import get

            family = get(family)
        if not isinstance(family, ProblemFamily):
            raise ConfigError(f"family={family!r} must be a ProblemFamily or a family name")
        if isinstance(weight, bool) or not isinstance(weight, Real) or not weight >= 0:
            raise ConfigError(f"weight={weight!r} is not allowed; it must be a number >= 0")
        if where not in WHERE:
            raise ConfigError(f"where={where!r} is not allowed; choose one of {', '.join(WHERE)}")
        self.family: ProblemFamily = family
        self.weight: float = float(weight)
        self.where: str = where
        self.space_names: tuple[str, ...] = tuple(family.space)
        coords = ("t", *self.space_names)
        self.derivatives: dict[str, tuple[int, ...]] = {
            n: parse_derivative(n, coords) for n in family.spatial_derivatives}
        if isinstance(extra_inputs, bool) or not isinstance(extra_inputs, int) \
                or extra_inputs < 0:
            raise ConfigError(f"extra_inputs={extra_inputs!r} is not allowed; it must be an "
                              "int >= 0")
        self.extra_inputs: int = extra_inputs
        self.in_dim: int = 1 + len(self.space_names) + extra_inputs
        self.state_dim: int = len(family.state_names)
        self.scale: torch.Tensor | None = None
        if scale is not None:
            s = torch.as_tensor(scale, dtype=torch.float64).detach().reshape(-1)
            if s.numel() != self.state_dim or not bool(torch.all(torch.isfinite(s) & (s > 0))):
                raise ConfigError(f"scale={scale!r} is not allowed; give {self.state_dim} "
                                  f"finite numbers > 0 (one per channel of "
                                  f"{family.state_names}) or None")
            self.scale = s

    def applies(self, stage: str) -> bool:
        """Whether the term enters the ``"inner"`` or ``"outer"`` loss."""
        return self.where in (stage, "both")

    def check(self, x: torch.Tensor, y_dim: int, n_params: int) -> None:
        """Shape checks against the family: inputs, outputs and parameter count."""
        name = self.family.name
        if x.shape[-1] != self.in_dim:
            raise ConfigError(f"collocation_x has d_in={x.shape[-1]} but family {name!r} needs "
                              f"{self.in_dim} input columns (t{', ' if self.space_names else ''}"
                              f"{', '.join(self.space_names)})")
        if y_dim != self.state_dim:
            raise ConfigError(f"the model outputs {y_dim} channels but family {name!r} has "
                              f"state {self.family.state_names}")
        if n_params != len(self.family.params):
            raise ConfigError(f"batch.params has {n_params} columns but family {name!r} has "
                              f"parameters {self.family.param_names}")

    def residual(self, model: nn.Module, params: Mapping[str, torch.Tensor],
                 x: torch.Tensor, task_params: torch.Tensor) -> torch.Tensor:
        """Residual ``[N, C]`` at collocation points x ``[N, d_in]`` for one task ``[P]``."""

        def u(xi: torch.Tensor) -> torch.Tensor:
            return functional_call(model, dict(params), (xi.unsqueeze(0),)).squeeze(0)

        derivs = self.derivatives

        def at_point(
            xi: torch.Tensor,
        ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
            primal_tangent = jvp(u, (xi,), (_basis(xi, 0),))
            extra = {n: _nested(u, cols)(xi) for n, cols in derivs.items()}
            return primal_tangent[0], primal_tangent[1], extra

        y, dydt, extra = vmap(at_point)(x)
        p = task_params.expand(x.shape[0], task_params.shape[-1])
        return self.assemble(x, y, dydt, extra, p)

    def assemble(self, x: torch.Tensor, y: torch.Tensor, dydt: torch.Tensor,
                 derivs: Mapping[str, torch.Tensor], params: torch.Tensor) -> torch.Tensor:
        """The family's residual ``[N, C]`` (divided by :attr:`scale` when set) from the
        network's values and input derivatives.

        x ``[N, d_in]`` (t, then space), y and dydt ``[N, C]``, ``derivs`` one ``[N, C]``
        per name of :attr:`derivatives`, params ``[N, P]`` (each point's task
        parameters). Both the ``torch.func`` path and the hand-batched path end here.
        """
        if self.space_names:
            kw = {f"d_{n}": v for n, v in derivs.items()}
            space = x[:, 1:1 + len(self.space_names)]
            r = self.family.residual(x[:, 0], y, dydt, params, space=space, **kw)
        else:
            r = self.family.residual(x[:, 0], y, dydt, params)
        if self.scale is not None:
            r = r / self.scale.to(device=r.device, dtype=r.dtype)
        return r

    def task_terms(self, x: torch.Tensor, task_params: torch.Tensor, y: torch.Tensor,
                   streams: Mapping[tuple[int, int], torch.Tensor]) -> torch.Tensor:
        """Per-task ``weight * mean(residual²)`` ``[B]`` from batched network outputs.

        x ``[B, N, d_in]`` collocation points, task_params ``[B, P]``, y ``[B, N, C]``
        the network's values there and ``streams`` its pure input derivatives ``{(input
        column, order): [B, N, C]}`` (``(0, 1)`` is dy/dt). The hand-batched paths (Taylor
        forward, and its written-out reverse) both end here.
        """
        b, n = x.shape[:2]

        def flat(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b * n, t.shape[-1])

        derivs = {name: flat(streams[(cols[0], len(cols))])
                  for name, cols in self.derivatives.items()}
        params = task_params.unsqueeze(-2).expand(b, n, task_params.shape[-1])
        r = self.assemble(flat(x), flat(y), flat(streams[(0, 1)]), derivs, flat(params))
        return self.weight * r.reshape(b, n, -1).square().mean(dim=(-2, -1))

    def __call__(self, model: nn.Module, params: Mapping[str, torch.Tensor],
                 x: torch.Tensor, task_params: torch.Tensor) -> torch.Tensor:
        """The weighted loss term (a scalar)."""
        r = self.residual(model, params, x, task_params)
        return self.weight * r.square().mean()

    def __repr__(self) -> str:
        scale = "" if self.scale is None else f", scale={self.scale.tolist()}"
        return (f"PhysicsLoss(family={self.family.name!r}, weight={self.weight}, "
                f"where={self.where!r}{scale})")


def _basis(x: torch.Tensor, col: int) -> torch.Tensor:
    e = torch.zeros(x.shape[-1], dtype=x.dtype, device=x.device)
    e[col] = 1.0
    return e
