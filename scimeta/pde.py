"""Grid-based PDE task families: the shared base, random initial conditions, status checks.

A :class:`PdeFamily` declares its spatial domain and grid (``domain``/``shape``,
coordinates through :attr:`space`), and returns fields ``[N, T, *space, C]``.
:class:`SpectralPdeFamily` implements :meth:`solve_batch` for periodic problems
``u_t = L u + N(u)`` with a Fourier pseudo-spectral discretisation, the 2/3 rule
and a :class:`~scimeta.solvers.stepper.Stepper` (ETDRK4 by default), batched over
tasks; a subclass gives only the Fourier symbol of ``L`` and the nonlinear term.
Its ``solve_batch`` is the one spectral time loop (hooks: see the class).

Every solve ends with :func:`field_status`: non-finite values give
``STATUS_NON_FINITE`` (the task is set to NaN) and a spectrum whose top third of
the resolved band holds more than ``resolution_tol`` of the energy gives
``STATUS_UNDER_RESOLVED``; both are logged, never silent.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from .errors import ConfigError, unknown_name
from .family import (
    STATUS_NAMES,
    STATUS_NON_FINITE,
    STATUS_OK,
    STATUS_UNDER_RESOLVED,
    ProblemFamily,
)
from .initial_fields import GaussianRandomField as GaussianRandomField
from .initial_fields import InitialCondition as InitialCondition
from .initial_fields import SineSeries as SineSeries
from .params import Regime
from .solvers.etdrk4 import ETDRK4, group_by_step
from .solvers.fourier import FourierGrid
from .solvers.stepper import Stepper

if TYPE_CHECKING:  # annotations only; torch is not needed to list or solve families
    import torch

log = logging.getLogger(__name__)


# ---- status -----------------------------------------------------------------------------
def field_status(grid: FourierGrid, fields: np.ndarray, resolution_tol: float,
                 family: str = "") -> np.ndarray:
    """Per-task status of solved fields ``[N, T, *space, C]`` -> ``[N]`` int8.

    Non-finite anywhere -> ``STATUS_NON_FINITE`` (the task's fields are set to NaN
    in place); otherwise a top-third energy share (:meth:`FourierGrid.tail_fraction`)
    above ``resolution_tol`` at any output time after the first (the initial frame is
    the caller's data, e.g. a kinked classic initial condition that diffusion smooths
    at once) -> ``STATUS_UNDER_RESOLVED``. Logs a
    warning with the counts whenever a task is not ok.
    """
    n = fields.shape[0]
    status = np.full(n, STATUS_OK, dtype=np.int8)
    finite = np.all(np.isfinite(fields.reshape(n, -1)), axis=1)
    solved = fields[:, 1:] if fields.shape[1] > 1 else fields  # t[0] is the given data
    share = grid.tail_fraction(np.where(np.isfinite(solved), solved, 0.0))
    status[share > resolution_tol] = STATUS_UNDER_RESOLVED
    status[~finite] = STATUS_NON_FINITE
    fields[~finite] = np.nan
    bad = status != STATUS_OK
    if np.any(bad):
        counts = {STATUS_NAMES[int(s)]: int(np.sum(status == s)) for s in np.unique(status[bad])}
        log.warning("%s: %d of %d tasks not ok %s (max top-third energy share %.2e, tol %.1e)",
                    family or "pde", int(bad.sum()), n, counts,
                    float(np.max(share[finite], initial=0.0)), resolution_tol)
    return status


# ---- families ---------------------------------------------------------------------------
class PdeFamily(ProblemFamily):
    """A PDE family on a uniform grid: ``domain`` per axis, ``shape`` points per axis.

    Coordinates exclude the right end (periodic grids). ``initial`` is the default
    random initial-condition family; :meth:`initial_state` handles named rules
    (``Regime.initial``). Constructor arguments override the grid and step.
    """

    domain: ClassVar[Mapping[str, tuple[float, float]]]
    shape: ClassVar[Mapping[str, int]]
    space_unit: ClassVar[str] = "m"
    initial: ClassVar[Any]
    #: Largest top-third energy share of a task still called resolved.
    resolution_tol: ClassVar[float] = 1e-6
    #: Named initial-condition rules understood by :meth:`initial_state`.
    initial_rules: ClassVar[tuple[str, ...]] = ()

    def __init__(self, shape: Mapping[str, int] | None = None,
                 max_step: float | None = None) -> None:
        if shape is not None:
            unknown = set(shape) - set(self.domain)
            if unknown:
                raise unknown_name(f"axis of family {self.name!r}", unknown.pop(), self.domain)
            # an instance's grid overrides the class default
            self.shape = {**self.shape, **{k: int(v) for k, v in shape.items()}}  # type: ignore[misc]
        if max_step is not None and not max_step > 0:
            raise ConfigError(f"max_step must be positive, got {max_step}")
        self.max_step_override = max_step

    @property
    def axes(self) -> tuple[str, ...]:
        return tuple(self.domain)

    @property
    def lengths(self) -> tuple[float, ...]:
        return tuple(hi - lo for lo, hi in self.domain.values())

    @property
    def spacing(self) -> tuple[float, ...]:
        """Grid spacing per axis (length units)."""
        return tuple(length / self.shape[a] for a, length in zip(self.axes, self.lengths,
                                                                 strict=True))

    @property
    def space(self) -> dict[str, np.ndarray]:
        return {a: lo + (hi - lo) * np.arange(self.shape[a]) / self.shape[a]
                for a, (lo, hi) in self.domain.items()}

    def space_units(self) -> dict[str, str]:
        return dict.fromkeys(self.domain, self.space_unit)

    def sample_initial_state(self, rng: np.random.Generator,
                             regime: Regime | None = None) -> np.ndarray:
        return self.initial_state(regime.initial if regime is not None else None, rng)

    def initial_state(self, rule: str | None, rng: np.random.Generator) -> np.ndarray:
        """Initial state ``[*space, C]`` for the named rule (``None``: random family)."""
        if rule is None:
            return self.initial.sample(rng, list(self.space.values()), self.lengths,
                                       len(self.state_names))
        raise unknown_name(f"initial-condition rule of family {self.name!r}", rule,
                           self.initial_rules)

    def check(self) -> None:
        super().check()
        for r in self.regimes.values():
            if r.initial is not None and r.initial not in self.initial_rules:
                raise unknown_name(f"initial rule in regime {r.name!r}", r.initial,
                                   self.initial_rules)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["space"] = {a: {"domain": list(d), "points": self.shape[a], "unit": self.space_unit}
                        for a, d in self.domain.items()}
        out["initial_condition"] = repr(self.initial)
        return out

    @staticmethod
    def param_columns(params: torch.Tensor) -> list[torch.Tensor]:
        """Split ``params`` ``[..., P]`` into P tensors ``[..., 1]`` (broadcast against C)."""
        return list(params.split(1, dim=-1))


class SpectralPdeFamily(PdeFamily):
    """Periodic family ``u_t = L u + N(u)`` solved by Fourier pseudo-spectral ETDRK4.

    Subclasses implement :meth:`linear_symbol` and :meth:`nonlinear`, and may
    override :meth:`max_step` (the per-task step limit, e.g. a CFL bound for the
    explicit nonlinear term). :meth:`solve_batch` is the one spectral time loop:
    initial states on the stored grid go through :meth:`prolong` to the solve grid
    (:meth:`fourier_grid`), are integrated there by :attr:`stepper` and recorded by
    :meth:`observe`, checked by :func:`field_status` on the solve grid, and brought
    back by :meth:`restrict`. The hooks are identities here;
    :class:`~scimeta.refined.RefinedSpectralFamily` overrides them.
    """

    #: Time integrator; declares its order in time (``stepper.order``).
    stepper: ClassVar[Stepper] = ETDRK4()
    #: Default largest internal time step (time units) when max_step() is not overridden.
    default_max_step: ClassVar[float] = 1e-2
    #: Apply the 2/3 rule to u and N(u) (off for a semi-discrete finite-difference model).
    dealias: ClassVar[bool] = True
    #: True when :meth:`nonlinear` already returns a 2/3-dealiased spectrum (it folded
    #: the mask into its own spectral multiplier), so the solver skips that product.
    nonlinear_is_dealiased: ClassVar[bool] = False
    #: Leading channels integrated in time (``None``: all; :meth:`observe` derives the rest).
    n_evolved: ClassVar[int | None] = None

    def stored_grid(self) -> FourierGrid:
        """The stored (output) grid, ``shape`` points per axis."""
        lows = [lo for lo, _ in self.domain.values()]
        return FourierGrid([self.shape[a] for a in self.axes], self.lengths, lows)

    def fourier_grid(self) -> FourierGrid:
        """The solve grid (here the stored grid)."""
        return self.stored_grid()

    @abc.abstractmethod
    def linear_symbol(self, grid: FourierGrid, params: np.ndarray) -> np.ndarray:
        """Fourier symbol of ``L``, broadcastable to ``[N, *modes, C]`` (1/time)."""

    @abc.abstractmethod
    def nonlinear(self, grid: FourierGrid, uh: np.ndarray, params: np.ndarray) -> np.ndarray:
        """Spectrum of ``N(u)`` from the (dealiased) spectrum ``uh`` ``[N, *modes, C]``."""

    def max_step(self, params: np.ndarray, y0: np.ndarray) -> np.ndarray:
        """Per-task largest stable/accurate internal step ``[N]`` (time units)."""
        return np.full(len(params), self.default_max_step)

    @staticmethod
    def per_task(grid: FourierGrid, values: np.ndarray) -> np.ndarray:
        """Per-task values ``[N]`` reshaped to broadcast against ``[N, *modes, C]``."""
        return np.asarray(values, dtype=np.float64).reshape((-1,) + (1,) * (grid.ndim + 1))

    # ---- hooks of the time loop ------------------------------------------------------
    def prolong(self, y0: np.ndarray) -> np.ndarray:
        """Initial states ``[N, *space, C]`` on the stored grid -> the solve grid."""
        return y0

    def observe(self, grid: FourierGrid, uh: np.ndarray) -> np.ndarray:
        """All state channels ``[N, *solve, C]`` from the evolved spectra ``uh``."""
        return grid.ifft(uh)

    def restrict(self, fields: np.ndarray) -> np.ndarray:
        """Fields ``[N, T, *solve, C]`` on the solve grid -> ``[N, T, *space, C]`` stored."""
        return fields

    def solve_batch(self, params: np.ndarray, y0: np.ndarray,
                    t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fields ``[N, T, *space, C]`` and status ``[N]`` from y0 ``[N, *space, C]``.

        Tasks are grouped by step (:func:`~scimeta.solvers.etdrk4.group_by_step`), so a
        task's result does not depend on the rest of the batch.
        """
        params = np.atleast_2d(np.asarray(params, dtype=np.float64))
        y0 = np.asarray(y0, dtype=np.float64)
        expect = (len(params), *(self.shape[a] for a in self.axes), len(self.state_names))
        if y0.shape != expect:
            raise ConfigError(f"{self.name}: y0 has shape {y0.shape}, expected {expect}")
        grid = self.fourier_grid()
        state0 = self.prolong(y0)[..., : self.n_evolved or len(self.state_names)]
        limits = self.max_step(params, state0)
        if self.max_step_override is not None:
            limits = np.minimum(limits, self.max_step_override)
        out = np.empty((len(params), len(t), *grid.shape, len(self.state_names)))
        for idx, step in group_by_step(limits, t):
            p = params[idx]

            def rhs(uh: np.ndarray, p: np.ndarray = p) -> np.ndarray:
                return self._rhs(grid, uh, p)

            def observe(uh: np.ndarray) -> np.ndarray:
                return self.observe(grid, uh)

            out[idx] = self.stepper.solve(grid.fft(state0[idx]), self.linear_symbol(grid, p),
                                          rhs, t, step, observe=observe)
        status = field_status(grid, out, self.resolution_tol, self.name)
        return self.restrict(out), status

    def _rhs(self, grid: FourierGrid, uh: np.ndarray, params: np.ndarray) -> np.ndarray:
        """``N(u)`` with the 2/3 rule on its input and output (per :attr:`dealias`)."""
        if not self.dealias:
            return self.nonlinear(grid, uh, params)
        n = self.nonlinear(grid, grid.dealias(uh), params)
        return n if self.nonlinear_is_dealiased else grid.dealias(n)
