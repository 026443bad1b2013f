"""The result of a contract run: one :class:`Check` per property, and their table."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import FamilyContractError

PASS, FAIL, NA = "pass", "FAIL", "n/a"


@dataclass(frozen=True)
class Check:
    """One property of a family: what was measured, against which bound.

    ``value`` is the measured number (relative errors are dimensionless, scaled as the
    check's ``detail`` says), ``relation`` is ``"<="`` or ``">="`` and ``bound`` the
    limit it must satisfy; ``status`` is ``"pass"``, ``"FAIL"`` or ``"n/a"`` (the
    property does not apply to this family, e.g. no time step to refine).
    """

    name: str
    status: str
    value: float | None = None
    relation: str = "<="
    bound: float | None = None
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.status != FAIL

    @classmethod
    def measure(cls, name: str, value: float, relation: str, bound: float,
                detail: str = "") -> Check:
        """A check that passes iff ``value relation bound`` (NaN never passes)."""
        ok = value <= bound if relation == "<=" else value >= bound
        return cls(name, PASS if ok and not math.isnan(value) else FAIL, float(value),
                   relation, float(bound), detail)

    def line(self) -> str:
        """``name: measured 3.1e-07 <= 1e-06 (detail)`` -- one line."""
        measured = ""
        if self.value is not None:
            measured = f"measured {_num(self.value)} {self.relation} {_num(self.bound)}"
        text = "; ".join(t for t in (measured, self.detail) if t)
        return f"{self.name}: {text}" if text else self.name


@dataclass
class ContractReport:
    """All checks of one family (see :func:`scimeta.contract.check_family`)."""

    family: str
    quick: bool
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def __getitem__(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check {name!r}; checks: {', '.join(c.name for c in self.checks)}")

    def summary(self) -> str:
        """One line: passed, or the failed checks with their measurements."""
        mode = "quick" if self.quick else "full"
        if self.passed:
            return (f"family {self.family!r} passes the contract ({mode}, "
                    f"{len(self.checks)} checks, {self.seconds:.1f} s)")
        return (f"family {self.family!r} fails the contract ({mode}): "
                + "; ".join(c.line() for c in self.failures))

    def table(self) -> str:
        """A plain-text table: check, status, measured, bound, detail."""
        rows = [("check", "status", "measured", "bound", "detail")]
        for c in self.checks:
            rows.append((c.name, c.status, "" if c.value is None else _num(c.value),
                         "" if c.bound is None else f"{c.relation} {_num(c.bound)}", c.detail))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4]
                 for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths) + "  ------")
        return "\n".join(line.rstrip() for line in [*lines, self.summary()])

    def raise_for_failures(self) -> None:
        """Raise :class:`~scimeta.errors.FamilyContractError` (one line) if a check failed."""
        if not self.passed:
            raise FamilyContractError(self.summary())


def _num(value: float | None) -> str:
    if value is None:
        return ""
    if math.isfinite(value) and value == int(value) and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.2e}"
