"""The family contract: the checks every task family passes, built-in or a lab's own.

::

    from scimeta.contract import check_family
    report = check_family("oscillator", quick=True)
    print(report.table())            # one row per check: measured value and bound
    report.raise_for_failures()      # or verify_family(...), which raises directly

The checks (relative bounds; their reasons are with the constants of
:mod:`scimeta.contract._numerics` and :mod:`scimeta.contract._structure`):

``attributes``
    ``name, equation, params, state_names, time, regimes, solver`` (and ``initial_box``
    for an :class:`~scimeta.family.OdeFamily`) are set, with their types.
``declarations``
    :meth:`~scimeta.family.ProblemFamily.check`: regime bounds inside the physical
    domains, units, initial-condition rules.
``regimes-disjoint``
    within each split (``train`` / ``test-interpolate`` / ``test-extrapolate``, also
    with a prefix) no parameter vector lies in two regimes (exact; boxes half-open).
``solver-tolerance``
    a recorded adaptive tolerance is ``rtol <= 1e-6`` (:data:`MAX_RTOL`).
``self-convergence``
    ODEs: the solution at the recorded (rtol, atol) is within ``min(1e4 rtol, 1e-4)`` of
    the one at (rtol, atol) / 100; time-stepping PDEs: within 1e-4 of the one at half
    the step; ``n/a`` for families with nothing to refine (e.g. a direct solve).
``residual``
    the residual on a reference solution is <= 1e-10 (ODEs) or 1e-5 (others) of the
    equation's largest term (the largest change of the residual when ``y``, ``dydt`` or
    one spatial derivative is set to zero); a family may declare a looser
    ``contract_residual_tol`` together with ``contract_residual_reason``.
``residual-sensitivity``
    moving any one parameter by 10 % of max(|value|, its range over the regimes)
    changes the residual by >= 1e-3 of the largest term, in at least one regime.
``store-round-trip``
    two tasks generated into an HDF5 store read back equal (params, fields, status,
    support/query) through xarray and :class:`~scimeta.data.TaskReader`.

Full mode draws one task (seed 0) from every regime of each split; ``quick=True`` only
from ``train`` and, for PDE families, over the first output interval(s) only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np

from ..errors import ConfigError, FamilyContractError
from ..family import OdeFamily, ProblemFamily
from ..params import split_groups
from . import _numerics as numerics
from ._numerics import (
    MIN_SENSITIVITY,
    ODE_RESIDUAL_TOL,
    PDE_RESIDUAL_TOL,
    REFERENCE_ACCURACY,
    RTOL_FACTOR,
)
from ._report import FAIL, NA, PASS, Check, ContractReport
from ._store import round_trip
from ._structure import MAX_RTOL, check_structure, structure_checks

__all__ = ["MAX_RTOL", "MIN_SENSITIVITY", "ODE_RESIDUAL_TOL", "PDE_RESIDUAL_TOL",
           "REFERENCE_ACCURACY", "RTOL_FACTOR", "Check", "ContractReport", "check_family",
           "check_structure", "resolve", "tested_regimes", "verify_family"]

log = logging.getLogger(__name__)


def resolve(family: str | type[ProblemFamily] | ProblemFamily) -> ProblemFamily:
    """A family instance from a registered name, a class or an instance."""
    if isinstance(family, str):
        from .. import registry

        return registry.get(family)
    if isinstance(family, type) and issubclass(family, ProblemFamily):
        return family()
    if isinstance(family, ProblemFamily):
        return family
    raise ConfigError(f"family={family!r}: expected a registered family name, a "
                      "ProblemFamily subclass or an instance of one")


def tested_regimes(family: ProblemFamily, quick: bool = False) -> list[str]:
    """Regimes the numerical checks draw from: each split's regimes (quick: ``train``
    only), or every regime of a family without a split (quick: the first)."""
    groups = split_groups(family.regimes)
    names = [r for g in groups for r in g] or list(family.regimes)
    if quick:
        return ["train"] if "train" in names else names[:1]
    return names


def check_family(family: str | type[ProblemFamily] | ProblemFamily, *,
                 quick: bool = False) -> ContractReport:
    """Run every check of the contract on ``family`` and return the report (never
    raises for a failing check; see :func:`verify_family`)."""
    start = time.perf_counter()
    fam = resolve(family)
    report = ContractReport(getattr(fam, "name", type(fam).__name__), quick)
    report.checks += structure_checks(fam)
    if not report.checks[0].passed:  # attributes missing: nothing else can run
        report.seconds = time.perf_counter() - start
        return report
    report.checks.insert(1, _guard("declarations", lambda: _declarations(fam)))
    regimes = tested_regimes(fam, quick)
    short = quick and not isinstance(fam, OdeFamily)  # PDE solves: first outputs only
    report.checks.append(_guard("self-convergence", lambda: _convergence(fam, regimes, short)))
    try:
        report.checks += _residuals(fam, regimes)
    except Exception as exc:  # a check that cannot run fails, saying why
        report.checks += [Check(name, FAIL, detail=_why(exc))
                          for name in ("residual", "residual-sensitivity")]
    report.checks.append(_guard("store-round-trip", lambda: _store(fam, regimes[0], short)))
    report.seconds = time.perf_counter() - start
    log.info("%s", report.summary())
    return report


def verify_family(family: str | type[ProblemFamily] | ProblemFamily, *,
                  quick: bool = False) -> ContractReport:
    """:func:`check_family`, raising :class:`~scimeta.errors.FamilyContractError` (one
    line naming each failed check, its measurement and bound) if any check fails."""
    report = check_family(family, quick=quick)
    report.raise_for_failures()
    return report


def _why(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"cannot run: {text}"


def _guard(name: str, run: Callable[[], Check]) -> Check:
    try:
        return run()
    except Exception as exc:  # a check that cannot run fails, saying why
        return Check(name, FAIL, detail=_why(exc))


def _declarations(fam: ProblemFamily) -> Check:
    try:
        fam.check()
    except FamilyContractError:
        pass  # raised by the structural part, which has its own rows
    return Check("declarations", PASS, detail="ProblemFamily.check(): regime bounds in the "
                 "physical domains, units, initial rules")


def _convergence(fam: ProblemFamily, regimes: list[str], short: bool) -> Check:
    worst: tuple[float, float, str] | None = None
    for name in regimes:
        regime = fam.regime(name)
        params, y0 = numerics.draw(fam, regime)
        t = fam.time_grid(regime).values()
        found = numerics.convergence(fam, params, y0, t[:2] if short else t)
        if found is None:
            return Check("self-convergence", NA, detail=f"{fam.solver.method}: no tolerance "
                         "or time step to refine")
        err, bound, how = found
        if worst is None or err / bound > worst[0] / worst[1]:
            worst = (err, bound, f"{name}, {how}")
    if worst is None:
        return Check("self-convergence", NA, detail="no regime to solve")
    return Check.measure("self-convergence", worst[0], "<=", worst[1], worst[2])


def _residuals(fam: ProblemFamily, regimes: list[str]) -> list[Check]:
    tol, source = numerics.residual_tolerance(fam)
    worst, changes = (-1.0, ""), []
    for name in regimes:
        regime = fam.regime(name)
        params, y0 = numerics.draw(fam, regime)
        value, change = numerics.residual_checks(fam, params, y0, fam.time_grid(regime).values())
        worst = max(worst, (value, name))
        changes.append(change)
    # each parameter must move the residual in some regime (not in all: with the forcing
    # fixed at 0, an unforced regime cannot feel the forcing frequency)
    best = np.max(changes, axis=0)
    least = int(np.argmin(best))
    how = "dy/dt from rhs" if isinstance(fam, OdeFamily) else "dy/dt by 8th-order differences"
    return [Check.measure("residual", worst[0], "<=", tol,
                          f"{worst[1]}: {how}; tolerance {source}"),
            Check.measure("residual-sensitivity", best[least], ">=", MIN_SENSITIVITY,
                          f"least sensitive parameter {fam.params[least].name!r}, moved by "
                          f"{numerics.PERTURBATION:g} x max(|value|, range)")]


def _store(fam: ProblemFamily, regime: str, short: bool) -> Check:
    bad, detail = round_trip(fam, regime, times=2 if short else None)
    return Check.measure("store-round-trip", bad, "<=", 0, detail)
