"""Method of lines on a uniform 1D grid: central differences plus scipy's stiff integrators.

A field ``u`` on the nodes ``x_0 < ... < x_{n-1}`` (uniform spacing ``dx``, length
units) is advanced by ``du/dt = rhs(t, u, u_x, u_xx)`` with the central differences

    u_x ~ (u_{i+1} - u_{i-1}) / (2 dx),    u_xx ~ (u_{i+1} - 2 u_i + u_{i-1}) / dx^2,

both second-order accurate (error ``O(dx^2)`` on a smooth ``u``). Ends:

* :class:`Dirichlet`: the end node holds a fixed value and is not evolved;
* :class:`Neumann`: the end node is evolved; the ghost node ``u_{-1} = u_1 - 2 dx g``
  (left) or ``u_n = u_{n-2} + 2 dx g`` (right) imposes ``u_x = g`` to second order;
* :class:`Periodic` (both ends): ``x`` is one period without the repeated end point.

The semi-discrete system is integrated by :func:`scipy.integrate.solve_ivp` (BDF by
default) with the tridiagonal Jacobian pattern as ``jac_sparsity`` (periodic: plus the
two corners), or with a constant sparse Jacobian given by the caller (linear problems).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.integrate import solve_ivp

from ..errors import SolverFailed, SolverInputError

#: ``rhs(t, u, u_x, u_xx) -> du/dt``, all arrays ``[n]`` on the full grid.
Rhs = Callable[[float, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Dirichlet:
    """``u = value`` at this end (state units); ``None`` holds the initial value ``u0`` there."""

    value: float | None = None


@dataclass(frozen=True)
class Neumann:
    """``u_x = slope`` at this end (state units / length; the derivative along +x at both ends)."""

    slope: float = 0.0


@dataclass(frozen=True)
class Periodic:
    """Periodic in x; must be given at both ends."""


Boundary = Dirichlet | Neumann | Periodic


def uniform_spacing(x: np.ndarray) -> float:
    """The spacing ``dx`` of a strictly increasing uniform grid ``x`` ``[n]``, ``n >= 3``.

    Raises :class:`~scimeta.errors.SolverInputError` (naming ``x``) for any other grid;
    spacings may differ by ``1e-8 dx`` (round-off of ``linspace``/``arange``).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or x.size < 3:
        raise SolverInputError(f"x must be a 1D grid of at least 3 points, got shape {x.shape}")
    d = np.diff(x)
    dx = float((x[-1] - x[0]) / (x.size - 1))
    if not (np.all(np.isfinite(x)) and dx > 0 and np.max(np.abs(d - dx)) <= 1e-8 * dx):
        raise SolverInputError(f"x must be uniform and strictly increasing; spacings range "
                          f"from {d.min():g} to {d.max():g}")
    return dx


class MolGrid:
    """Difference operators on a uniform grid ``x`` ``[n]`` with the given ends.

    ``u_x = d1 @ u + b1`` and ``u_xx = d2 @ u + b2`` (CSR ``[n, n]`` in 1/length and
    1/length^2; ``b1``, ``b2`` ``[n]`` hold the Neumann data). Rows of Dirichlet nodes
    are zero (those nodes are not evolved); ``free`` indexes the evolved nodes.
    """

    def __init__(self, x: np.ndarray, left: Boundary = Dirichlet(),
                 right: Boundary = Dirichlet()) -> None:
        for name, end in (("left", left), ("right", right)):
            if not isinstance(end, Dirichlet | Neumann | Periodic):
                raise SolverInputError(f"{name} must be Dirichlet, Neumann or Periodic, "
                                       f"got {end!r}")
        self.periodic = isinstance(left, Periodic)
        if self.periodic != isinstance(right, Periodic):
            raise SolverInputError(f"left and right must both be Periodic, got {left!r}, {right!r}")
        self.x = np.asarray(x, dtype=np.float64)
        self.dx = dx = uniform_spacing(self.x)
        self.left, self.right = left, right
        n = self.n = self.x.size
        d1 = sp.diags([-1.0, 1.0], [-1, 1], shape=(n, n), format="lil")
        d2 = sp.diags([1.0, -2.0, 1.0], [-1, 0, 1], shape=(n, n), format="lil")
        self.b1, self.b2 = np.zeros(n), np.zeros(n)
        if self.periodic:
            d1[0, n - 1], d1[n - 1, 0] = -1.0, 1.0
            d2[0, n - 1] = d2[n - 1, 0] = 1.0
        for i, j, sign, end in ((0, 1, -1.0, left), (n - 1, n - 2, 1.0, right)):
            if isinstance(end, Periodic):
                continue
            d1[i, j] = d2[i, j] = d2[i, i] = 0.0
            if isinstance(end, Neumann):
                d2[i, i], d2[i, j] = -2.0, 2.0
                self.b1[i] = end.slope
                self.b2[i] = sign * 2.0 * end.slope / dx
        self.d1 = (d1.tocsr() / (2 * dx)).tocsr()
        self.d2 = (d2.tocsr() / dx**2).tocsr()
        self.d1.eliminate_zeros()
        self.d2.eliminate_zeros()
        fixed = [i for i, end in ((0, left), (n - 1, right)) if isinstance(end, Dirichlet)]
        self.free = np.setdiff1d(np.arange(n), fixed)

    def ddx(self, u: np.ndarray) -> np.ndarray:
        """``u_x`` ``[n]`` (units of ``u`` / length)."""
        return self.d1 @ u + self.b1

    def d2dx2(self, u: np.ndarray) -> np.ndarray:
        """``u_xx`` ``[n]`` (units of ``u`` / length^2)."""
        return self.d2 @ u + self.b2

    def jac_sparsity(self) -> sp.csr_matrix:
        """0/1 Jacobian pattern on the free nodes, ``[m, m]``, of a pointwise ``rhs``.

        Tridiagonal (``3m - 2`` nonzeros); periodic grids add the two corners (``3m``).
        """
        m = self.free.size
        pattern = sp.diags([1.0, 1.0, 1.0], [-1, 0, 1], shape=(m, m), format="lil")
        if self.periodic:
            pattern[0, m - 1] = pattern[m - 1, 0] = 1.0
        return pattern.tocsr()


def solve_mol(rhs: Rhs, u0: np.ndarray, t: np.ndarray, x: np.ndarray | MolGrid,
              left: Boundary = Dirichlet(), right: Boundary = Dirichlet(), *,
              method: str = "BDF", rtol: float = 1e-6, atol: float = 1e-9,
              jac: sp.spmatrix | np.ndarray | None = None) -> np.ndarray:
    """Integrate ``u_t = rhs(t, u, u_x, u_xx)`` and return ``u`` at the times ``t``.

    rhs: maps time and the full-grid arrays ``u``, ``u_x``, ``u_xx`` ``[n]`` to ``u_t``
    ``[n]``; it must be pointwise (output ``i`` uses node ``i`` only, or ``i +- 1`` via
    :meth:`MolGrid.ddx`) for the tridiagonal ``jac_sparsity`` to hold. Entries at
    Dirichlet nodes are ignored. u0: ``[n]`` initial field (at Dirichlet ends with a
    ``value`` the value replaces ``u0``). t: ``[T]`` strictly increasing output times,
    ``t[0]`` the initial time (time units). x: nodes ``[n]`` (length units), or a
    prepared :class:`MolGrid` (then ``left``/``right`` are taken from it). method,
    rtol, atol: passed to :func:`~scipy.integrate.solve_ivp`. jac: optional constant
    Jacobian ``d rhs / d u`` ``[n, n]`` on the full grid (e.g. ``D * grid.d2`` for the
    heat equation); only BDF and Radau use it (or the sparsity pattern otherwise).

    Returns ``[T, n]`` float64. Raises :class:`~scimeta.errors.SolverInputError` for bad
    arguments and :class:`SolverFailed` if the integrator stops early.
    """
    grid = x if isinstance(x, MolGrid) else MolGrid(x, left, right)
    n = grid.n
    u0 = np.asarray(u0, dtype=np.float64)
    if u0.shape != (n,):
        raise SolverInputError(f"u0 must have shape ({n},) to match x, got {u0.shape}")
    t = np.asarray(t, dtype=np.float64)
    if t.ndim != 1 or t.size < 2 or np.any(np.diff(t) <= 0) or not np.all(np.isfinite(t)):
        raise SolverInputError(f"t must be a 1D array of >= 2 strictly increasing times, got {t!r}")
    base = u0.copy()
    for i, end in ((0, grid.left), (n - 1, grid.right)):
        if isinstance(end, Dirichlet) and end.value is not None:
            base[i] = end.value
    free = grid.free
    first = np.asarray(rhs(float(t[0]), base, grid.ddx(base), grid.d2dx2(base)))
    if first.shape != (n,):
        raise SolverInputError(f"rhs must return shape ({n},), got {first.shape}")

    def f(tt: float, v: np.ndarray) -> np.ndarray:
        u = base.copy()
        u[free] = v
        return np.asarray(rhs(tt, u, grid.ddx(u), grid.d2dx2(u)))[free]

    options: dict[str, object] = {}
    if method in ("BDF", "Radau"):
        if jac is not None:
            options["jac"] = sp.csr_matrix(jac)[free][:, free]
        else:
            options["jac_sparsity"] = grid.jac_sparsity()
    elif jac is not None:
        raise SolverInputError(f"jac is used only by method='BDF' or 'Radau', "
                               f"got method={method!r}")
    sol = solve_ivp(f, (t[0], t[-1]), base[free], method=method, t_eval=t,
                    rtol=rtol, atol=atol, **options)
    if not sol.success:
        raise SolverFailed(f"solve_ivp({method}) stopped at t={sol.t[-1]:g}: {sol.message}")
    out = np.repeat(base[None, :], t.size, axis=0)
    out[:, free] = sol.y.T
    return out
