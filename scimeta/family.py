"""The task-family contract: what every parameterized ODE/PDE system provides.

A :class:`ProblemFamily` is mostly data (parameter specs, regimes, grid, equation
text) plus three numerical pieces: an initial-state sampler, a reference solver
``solve_batch`` and the equation residual as a torch function for
physics-informed losses. :class:`OdeFamily` implements the solver with
``scipy.integrate.solve_ivp`` from one right-hand side written once for numpy
and torch.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from .errors import ConfigError, SolverFailed, unknown_name
from .params import ParamSpec, Regime, TimeGrid

if TYPE_CHECKING:  # torch and scipy load on first use: `scimeta --help` stays fast
    import torch

# Per-task status codes stored in the HDF5 ``status`` variable.
STATUS_PENDING = -1
STATUS_OK = 0
STATUS_SOLVER_FAILED = 1
STATUS_NON_FINITE = 2
STATUS_UNDER_RESOLVED = 3
STATUS_NAMES = {
    STATUS_PENDING: "pending",
    STATUS_OK: "ok",
    STATUS_SOLVER_FAILED: "solver-failed",
    STATUS_NON_FINITE: "non-finite",
    STATUS_UNDER_RESOLVED: "under-resolved",
}


@dataclass(frozen=True)
class SolverInfo:
    """How reference solutions are computed; stored as provenance in every file."""

    name: str
    method: str
    rtol: float | None = None
    atol: float | None = None
    dt: float | None = None
    note: str = ""


class ProblemFamily(abc.ABC):
    """A parameterized ODE/PDE system from which meta-learning tasks are drawn.

    Subclasses set the class attributes and implement :meth:`sample_initial_state`,
    :meth:`solve_batch` and :meth:`residual`. Arrays follow ``[task, time, *space,
    channel]``; ``channel`` indexes :attr:`state_names`.
    """

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    equation: ClassVar[str]  # plain text, exact form (e.g. "u_t + u u_x = (nu/pi) u_xx")
    equation_latex: ClassVar[str] = ""
    params: ClassVar[tuple[ParamSpec, ...]]
    state_names: ClassVar[tuple[str, ...]]
    state_units: ClassVar[tuple[str, ...]] = ()
    time_unit: ClassVar[str] = "1"
    time: ClassVar[TimeGrid]
    regimes: ClassVar[Mapping[str, Regime]]
    solver: ClassVar[SolverInfo]
    #: Spatial derivatives of the state that :meth:`residual` needs, e.g. ``("x", "xx")``
    #: for Burgers; each is passed as keyword ``d_<name>`` of shape ``[..., C]``.
    spatial_derivatives: ClassVar[tuple[str, ...]] = ()
    #: Looser bound on the residual of stored solutions for the family contract
    #: (``scimeta check``; relative to the equation's largest term), with the reason
    #: why; None: the contract's default.
    contract_residual_tol: ClassVar[float | None] = None
    contract_residual_reason: ClassVar[str] = ""

    # ---- parameter space -------------------------------------------------
    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def space(self) -> dict[str, np.ndarray]:
        """Spatial coordinates by name (empty for ODEs), each shape ``[n_x]``."""
        return {}

    def space_units(self) -> dict[str, str]:
        return {}

    def regime(self, name: str) -> Regime:
        """The regime called ``name``; the error lists the known ones."""
        try:
            return self.regimes[name]
        except KeyError:
            raise unknown_name("regime", name, self.regimes, f"of family {self.name!r}") from None

    def time_grid(self, regime: Regime | None = None) -> TimeGrid:
        return regime.time if regime is not None and regime.time is not None else self.time

    def check(self) -> None:
        """Validate the family's own declarations (used by the registry's tests), then the
        contract's structural checks: disjoint split regimes and a solver rtol <= 1e-6
        (:func:`scimeta.contract.check_structure`, raises ``FamilyContractError``)."""
        from .contract import check_structure  # here: scimeta.contract imports this module

        for r in self.regimes.values():
            r.check(self.params)
        if len(self.state_units) not in (0, len(self.state_names)):
            raise ConfigError(f"family {self.name!r}: state_units/state_names lengths differ")
        check_structure(self)

    def override(self, regime: Regime, bounds: Mapping[str, tuple[float, float]],
                 exclude: Sequence[Mapping[str, tuple[float, float]]] = ()) -> Regime:
        """A copy of a box regime with some parameter bounds replaced and ``exclude``
        boxes (each: bounds of some parameters) cut out beside its own (validated)."""
        if regime.box is None:
            raise ConfigError(
                f"regime {regime.name!r} is a fixed set of environments; "
                "its bounds cannot be overridden"
            )
        box = dict(regime.box)
        specs = {s.name: s for s in self.params}
        for key, (lo, hi) in bounds.items():
            if key not in specs:
                raise unknown_name("parameter", key, specs, f"of family {self.name!r}")
            specs[key].check_interval(lo, hi, "--param bounds")
            box[key] = (float(lo), float(hi))
        holes = []
        for hole in exclude:
            if not hole:
                raise ConfigError("exclude: an excluded box needs bounds for at least one "
                                  "parameter")
            for key, (lo, hi) in hole.items():
                if key not in specs:
                    raise unknown_name("parameter", key, specs, f"of family {self.name!r}")
                specs[key].check_interval(lo, hi, "exclude bounds")
            holes.append({k: (float(lo), float(hi)) for k, (lo, hi) in hole.items()})
        what = ", ".join(w for w, on in (("bounds overridden", bounds), ("boxes excluded",
                                                                        holes)) if on)
        new = Regime(regime.name, box=box, exclude=(*regime.exclude, *holes),
                     description=regime.description + (f" ({what})" if what else ""),
                     time=regime.time,
                     initial=regime.initial, closed=regime.closed)
        new.check(self.params)
        return new

    # ---- numerics --------------------------------------------------------
    @abc.abstractmethod
    def sample_initial_state(
        self, rng: np.random.Generator, regime: Regime | None = None
    ) -> np.ndarray:
        """One initial state, shape ``[*space, channel]`` float64.

        ``regime.initial`` (if set) selects a family-specific rule.
        """

    @abc.abstractmethod
    def solve_batch(
        self, params: np.ndarray, y0: np.ndarray, t: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Reference solutions for many tasks.

        params ``[N, P]``, y0 ``[N, *space, C]``, t ``[T]`` (``t[0]`` is the initial
        time). Returns fields ``[N, T, *space, C]`` float64 and status ``[N]`` int8
        (see ``STATUS_*``); failed tasks hold NaN.
        """

    @abc.abstractmethod
    def residual(
        self, t: torch.Tensor, y: torch.Tensor, dydt: torch.Tensor, params: torch.Tensor,
        **derivs: torch.Tensor,
    ) -> torch.Tensor:
        """Equation residual, zero on exact solutions; differentiable in all inputs.

        t ``[...]``, y and dydt ``[..., C]``, params ``[..., P]`` (broadcast against
        each other); returns ``[..., C]``. PDE families also take ``space``
        (coordinates ``[..., S]`` ordered as :attr:`space`) and one keyword
        ``d_<name>`` ``[..., C]`` per entry of :attr:`spatial_derivatives`.
        """

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary used by ``scimeta problems`` and file provenance."""
        return {
            "name": self.name,
            "summary": self.summary,
            "equation": self.equation,
            "equation_latex": self.equation_latex,
            "state": list(self.state_names),
            "params": [
                {"name": p.name, "unit": p.unit, "domain": list(p.domain),
                 "distribution": p.distribution, "description": p.description}
                for p in self.params
            ],
            "regimes": {
                r.name: {"bounds": r.bounds(self.params).tolist(),
                         "environments": None if r.points is None else len(r.points),
                         "description": r.description}
                for r in self.regimes.values()
            },
            "solver": self.solver.__dict__,
        }


def solve_each(n: int, shape: tuple[int, ...],
               solve_one: Callable[[int], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Fields ``[n, *shape]`` float64 and status ``[n]`` int8 of ``n`` independent
    solves: ``solve_one(i)`` returns task i's field of ``shape`` or raises
    :class:`SolverFailed` (its row stays NaN, status ``STATUS_SOLVER_FAILED``); a field
    with a non-finite value gets ``STATUS_NON_FINITE``."""
    out = np.full((n, *shape), np.nan)
    status = np.zeros(n, dtype=np.int8)
    for i in range(n):
        try:
            out[i] = solve_one(i)
        except SolverFailed:
            status[i] = STATUS_SOLVER_FAILED
            continue
        if not np.all(np.isfinite(out[i])):
            status[i] = STATUS_NON_FINITE
    return out, status


class OdeFamily(ProblemFamily):
    """A family of ODE systems ``dy/dt = f(t, y; p)`` solved with ``solve_ivp``.

    Subclasses implement :meth:`rhs` once, generically over the array module
    ``xp`` (numpy for the reference solver, torch for the residual).
    """

    #: Uniform initial-state box, one ``(low, high)`` per state component.
    initial_box: ClassVar[Sequence[tuple[float, float]]]

    @abc.abstractmethod
    def rhs(self, t: Any, y: Sequence[Any], p: Sequence[Any], xp: Any) -> Sequence[Any]:
        """Right-hand side components; ``y``/``p`` are tuples of scalars or tensors."""

    def method_for(self, params: np.ndarray) -> str:
        """The ``solve_ivp`` method for one task (stiff families override)."""
        return self.solver.method

    def sample_initial_state(self, rng, regime=None):
        box = np.asarray(self.initial_box, dtype=np.float64)
        return rng.uniform(box[:, 0], box[:, 1])

    def solve(self, params: np.ndarray, y0: np.ndarray, t: np.ndarray,
              rtol: float | None = None, atol: float | None = None,
              method: str | None = None) -> np.ndarray:
        """One trajectory, shape ``[T, C]``; raises :class:`SolverFailed`."""
        from scipy.integrate import solve_ivp

        p = tuple(float(v) for v in params)

        def f(tt: float, yy: np.ndarray) -> list[float]:
            return list(self.rhs(tt, tuple(yy), p, np))

        sol = solve_ivp(
            f, (float(t[0]), float(t[-1])), np.asarray(y0, dtype=np.float64), t_eval=t,
            method=method or self.method_for(params),
            rtol=rtol if rtol is not None else self.solver.rtol,
            atol=atol if atol is not None else self.solver.atol,
        )
        if not sol.success or sol.y.shape[1] != len(t):
            raise SolverFailed(f"{self.name} with params {list(p)}: {sol.message}")
        return sol.y.T

    def solve_batch(self, params, y0, t, **solve_kw):
        """One :meth:`solve` per task; ``solve_kw`` (rtol, atol, method) go to each."""
        return solve_each(len(params), (len(t), len(self.state_names)),
                          lambda i: self.solve(params[i], y0[i], t, **solve_kw))


    def rhs_torch(self, t: torch.Tensor, y: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """``f(t, y; p)`` on tensors: t ``[...]``, y ``[..., C]``, params ``[..., P]``."""
        import torch

        comps = self.rhs(t, tuple(y.unbind(-1)), tuple(params.unbind(-1)), torch)
        return torch.stack(torch.broadcast_tensors(*comps), dim=-1)

    def residual(self, t, y, dydt, params, **derivs):
        return dydt - self.rhs_torch(t, y, params)
