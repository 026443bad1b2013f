"""The cheap, structural part of the contract (no solving): required attributes,
disjoint split regimes and a tight enough solver tolerance.

:meth:`ProblemFamily.check() <scimeta.family.ProblemFamily.check>` runs
:func:`check_structure`, so a family that breaks these fails at its first check.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import FamilyContractError
from ..family import OdeFamily, ProblemFamily, SolverInfo
from ..params import ParamSpec, Regime, TimeGrid, overlap, split_groups
from ._report import FAIL, NA, PASS, Check

#: Loosest relative tolerance a family's recorded adaptive solver may use. Global errors
#: of adaptive solvers run 10-1000 x rtol, so rtol <= 1e-6 keeps a reference within
#: ~1e-4 of the exact solution, below the 1e-2..1e-3 errors of the models trained on it;
#: scipy's default (RK45, rtol = 1e-3) gives percent-level errors (the Lotka-Volterra
#: invariant drifts by 5e-3 over t <= 100, tests/test_ode_families.py).
MAX_RTOL = 1e-6

#: Attributes every family sets, with the type each must have.
REQUIRED: dict[str, type | tuple[type, ...]] = {
    "name": str, "equation": str, "params": tuple, "state_names": tuple,
    "time": TimeGrid, "regimes": Mapping, "solver": SolverInfo,
}


def attribute_problems(family: ProblemFamily) -> list[str]:
    """What is missing or mistyped among the required attributes (empty: all fine)."""
    required = dict(REQUIRED)
    if isinstance(family, OdeFamily):
        required["initial_box"] = (tuple, list)
    problems = []
    for attr, kind in required.items():
        value = getattr(family, attr, None)
        if value is None:
            problems.append(f"{attr} missing")
        elif not isinstance(value, kind):
            problems.append(f"{attr} is {type(value).__name__}")
    if problems:
        return problems
    if not family.state_names or not all(isinstance(s, str) for s in family.state_names):
        problems.append("state_names must be a non-empty tuple of str")
    if not all(isinstance(p, ParamSpec) for p in family.params):
        problems.append("params must be a tuple of ParamSpec")
    for key, regime in family.regimes.items():
        if not isinstance(regime, Regime) or regime.name != key:
            problems.append(f"regimes[{key!r}] must be a Regime named {key!r}")
    if isinstance(family, OdeFamily) and len(family.initial_box) != len(family.state_names):
        problems.append(f"initial_box has {len(family.initial_box)} (low, high) pairs for "
                        f"{len(family.state_names)} states")
    return problems


def overlap_problems(family: ProblemFamily) -> list[str]:
    """One message per pair of regimes of a split that share a parameter vector."""
    out = []
    for group in split_groups(family.regimes):
        for i, a in enumerate(group):
            for b in group[i + 1:]:
                hit = overlap(family.params, family.regimes[a], family.regimes[b])
                if hit is not None:
                    at = ", ".join(f"{s.name}={v:g}" for s, v in zip(family.params, hit,
                                                                       strict=True))
                    out.append(f"regimes {a!r} and {b!r} share parameter values, e.g. {at} "
                               "(boxes are [low, high), holes and test-interpolate closed; "
                               "a test box may touch train but not overlap it)")
    return out


def tolerance_problem(family: ProblemFamily) -> str | None:
    """Why the recorded solver tolerance is not allowed, or ``None``."""
    rtol, atol = family.solver.rtol, family.solver.atol
    if isinstance(family, OdeFamily) and (rtol is None or atol is None):
        return (f"solver rtol={rtol}, atol={atol}: an OdeFamily records both "
                f"(rtol <= {MAX_RTOL:g})")
    if rtol is not None and not 0 < rtol <= MAX_RTOL:
        return (f"solver {family.solver.method} rtol={rtol:g} is looser than the contract "
                f"allows (0 < rtol <= {MAX_RTOL:g})")
    if atol is not None and not atol > 0:
        return f"solver atol={atol:g} must be positive"
    return None


def structure_checks(family: ProblemFamily) -> list[Check]:
    """The ``attributes``, ``regimes-disjoint`` and ``solver-tolerance`` checks."""
    missing = attribute_problems(family)
    if missing:
        return [Check("attributes", FAIL, len(missing), "<=", 0, "; ".join(missing))]
    checks = [Check("attributes", PASS, 0, "<=", 0, "name, equation, params, state_names, "
                    "time, regimes, solver" + (", initial_box" if isinstance(
                        family, OdeFamily) else ""))]
    try:
        overlaps = overlap_problems(family)
    except (KeyError, ValueError) as exc:  # regimes not matching params: see declarations
        checks.append(Check("regimes-disjoint", FAIL, detail=f"cannot compare regimes: {exc}"))
    else:
        groups = split_groups(family.regimes)
        where = "; ".join("/".join(g) for g in groups) or "no train/test split"
        checks.append(Check("regimes-disjoint", FAIL if overlaps else PASS, len(overlaps),
                            "<=", 0, "; ".join(overlaps) or where))
    problem = tolerance_problem(family)
    rtol = family.solver.rtol
    if rtol is None and problem is None:
        checks.append(Check("solver-tolerance", NA, detail=f"{family.solver.method}: no "
                            "adaptive tolerance (fixed steps or direct solve)"))
    else:
        checks.append(Check("solver-tolerance", FAIL if problem else PASS, rtol, "<=",
                            MAX_RTOL, problem or f"{family.solver.method} rtol"))
    return checks


def check_structure(family: ProblemFamily) -> None:
    """Raise :class:`~scimeta.errors.FamilyContractError` (one line) unless the family has
    its required attributes, disjoint split regimes and an allowed solver tolerance."""
    failed = [c for c in structure_checks(family) if not c.passed]
    if failed:
        name = getattr(family, "name", type(family).__name__)
        raise FamilyContractError(f"family {name!r}: " + "; ".join(c.line() for c in failed))
