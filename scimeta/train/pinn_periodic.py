"""Initial and periodic boundary conditions of a 1D PDE family for PINN adaptation.

:mod:`scimeta.train.pinn` writes Dirichlet conditions as a support set. A family
solved on a periodic interval ``[lo, hi)`` (every :class:`~scimeta.pde.SpectralPdeFamily`)
has no boundary *value* to fit; its condition is periodicity, ``u(t, lo) = u(t, hi)``
and ``u_x(t, lo) = u_x(t, hi)``. Here:

- :func:`initial_support` evaluates the family's own initial-condition rule on ``n``
  points of its own periodic grid (``n`` points on ``[lo, hi)``; where ``n`` divides
  the family's grid size they are grid points of the stored reference fields);
- :func:`periodic_pairs` gives boundary pairs ``(t_j, lo)``, ``(t_j, hi)``, appended
  to each task's collocation points (:func:`with_pairs`);
- :class:`PeriodicPhysicsLoss` is a :class:`~scimeta.meta.PhysicsLoss` whose last
  ``2 m`` collocation points are those pairs: it adds, unweighted by λ,

      bc_weight · mean_j [(u(t_j, lo) − u(t_j, hi))² + (u_x(t_j, lo) − u_x(t_j, hi))²]

  to ``λ · mean (r / s)²`` over the other points (``slope=False``: the u jump only,
  for an initial condition whose slopes do not match across the period). It overrides both
  :meth:`~scimeta.meta.PhysicsLoss.task_terms` (the hand-batched paths, MAML's inner
  loop and :func:`~scimeta.train.pinn.adapt_pinn`) and ``__call__`` (the generic
  ``torch.func`` path), so meta-training and test-time adaptation see the same loss.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, jvp, vmap

from ..errors import ConfigError
from ..family import ProblemFamily
from ..meta import PhysicsLoss
from ..pde import SpectralPdeFamily


def initial_support(family: ProblemFamily, rule: str | None, n: int,
                    dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """The initial condition as a support set: x ``[n, 2]`` (t = t0, x_i) and y ``[n, C]``.

    x_i = lo + (hi − lo) i / n, i < n (the family's own grid rule on ``n`` points), and
    y the family's ``initial_state(rule)`` there (a fresh family instance with that grid,
    so the values come from the family's code, not a copy of its formula). ``rule``
    must be deterministic (a named rule); t0 is the family's initial time.
    """
    if not isinstance(family, SpectralPdeFamily) or len(family.domain) != 1:
        raise ConfigError(f"family {family.name!r}: need a 1D SpectralPdeFamily")
    if rule is None or rule not in family.initial_rules:
        raise ConfigError(f"rule={rule!r}: need a named initial-condition rule of family "
                          f"{family.name!r} ({family.initial_rules})")
    if n < 2:
        raise ConfigError(f"n={n}: need n >= 2")
    axis = next(iter(family.domain))
    grid_family = type(family)(shape={axis: n})
    xs = np.asarray(grid_family.space[axis], dtype=np.float64)
    y0 = np.asarray(grid_family.initial_state(rule, np.random.default_rng(0)), np.float64)
    t0 = float(family.time.t0)
    x = np.stack([np.full_like(xs, t0), xs], 1)
    return (torch.as_tensor(x).to(dtype),
            torch.as_tensor(y0.reshape(n, -1)).to(dtype))


def periodic_pairs(n: int, t_end: float, lo: float, hi: float,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Boundary pairs ``[2 n, 2]``: (t_j, lo) for j < n, then (t_j, hi); t_j evenly
    spaced on ``(0, t_end]`` (t = 0 belongs to the initial condition)."""
    if n < 1 or not t_end > 0 or not hi > lo:
        raise ConfigError(f"n={n}, t_end={t_end}, [lo, hi]=[{lo}, {hi}]: need n >= 1, "
                          "t_end > 0 and hi > lo")
    ts = torch.linspace(0.0, t_end, n + 1, dtype=torch.float64)[1:]
    side = [torch.stack([ts, torch.full_like(ts, v)], 1) for v in (lo, hi)]
    return torch.cat(side).to(dtype)


def with_pairs(collocation_x: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """Collocation points ``[B, N, 2]`` followed by the same pairs ``[2 m, 2]`` for every
    task: ``[B, N + 2 m, 2]`` (the layout :class:`PeriodicPhysicsLoss` expects)."""
    b = collocation_x.shape[0]
    tail = pairs.to(collocation_x).unsqueeze(0).expand(b, -1, -1)
    return torch.cat([collocation_x, tail], 1)


class PeriodicPhysicsLoss(PhysicsLoss):
    """λ · mean (r / s)² over the interior collocation points plus the periodic
    boundary term over the last ``2 pairs`` points (see the module docstring)."""

    def __init__(self, family: ProblemFamily | str, weight: float = 1.0,
                 where: str = "inner", scale: Sequence[float] | torch.Tensor | None = None,
                 extra_inputs: int = 0, *, pairs: int, bc_weight: float = 1.0,
                 slope: bool = True) -> None:
        super().__init__(family, weight, where, scale, extra_inputs)
        if len(self.space_names) != 1 or not any(
                cols[0] == 1 for cols in self.derivatives.values()):
            raise ConfigError(f"family {self.family.name!r}: periodic pairs need one space "
                              "axis and an x derivative in the residual")
        if pairs < 1 or not bc_weight >= 0:
            raise ConfigError(f"pairs={pairs}, bc_weight={bc_weight}: need pairs >= 1 and "
                              "bc_weight >= 0")
        self.pairs = int(pairs)
        self.bc_weight = float(bc_weight)
        #: whether the jump of u_x enters the boundary term (False: the jump of u only)
        self.slope = bool(slope)

    def _split(self, n: int) -> int:
        m = 2 * self.pairs
        if n <= m:
            raise ConfigError(f"{n} collocation points: need more than the {m} boundary "
                              "pair points at their end")
        return n - m

    def _bc(self, u: torch.Tensor, ux: torch.Tensor) -> torch.Tensor:
        """bc_weight · mean of squared jumps; u, ux ``[..., 2 m, C]`` -> ``[...]``."""
        m = self.pairs
        term = (u[..., :m, :] - u[..., m:, :]).square().mean(dim=(-2, -1))
        if self.slope:
            term = term + (ux[..., :m, :] - ux[..., m:, :]).square().mean(dim=(-2, -1))
        return self.bc_weight * term

    def task_terms(self, x: torch.Tensor, task_params: torch.Tensor, y: torch.Tensor,
                   streams: Mapping[tuple[int, int], torch.Tensor]) -> torch.Tensor:
        n = self._split(x.shape[-2])
        inner = super().task_terms(x[:, :n], task_params, y[:, :n],
                                   {k: v[:, :n] for k, v in streams.items()})
        return inner + self._bc(y[:, n:], streams[(1, 1)][:, n:])

    def __call__(self, model: nn.Module, params: Mapping[str, torch.Tensor],
                 x: torch.Tensor, task_params: torch.Tensor) -> torch.Tensor:
        n = self._split(x.shape[-2])
        r = self.residual(model, params, x[:n], task_params)

        def u(xi: torch.Tensor) -> torch.Tensor:
            return functional_call(model, dict(params), (xi.unsqueeze(0),)).squeeze(0)

        def value_and_dx(xi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            e = torch.zeros_like(xi)
            e[1] = 1.0
            out = jvp(u, (xi,), (e,))
            return out[0], out[1]

        ub, uxb = vmap(value_and_dx)(x[n:])
        return self.weight * r.square().mean() + self._bc(ub, uxb)

    def __repr__(self) -> str:
        return (super().__repr__()[:-1]
                + f", pairs={self.pairs}, bc_weight={self.bc_weight}, slope={self.slope})")


__all__ = ["PeriodicPhysicsLoss", "initial_support", "periodic_pairs", "with_pairs"]
