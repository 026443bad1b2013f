"""Test helpers for packages that ship their own task family.

A plugin checks its family against the same contract as the built-ins in one line::

    # tests/test_my_family.py of your package
    from scimeta.testing import assert_family_contract
    from my_lab.families import Duffing

    def test_duffing_passes_the_scimeta_contract():
        assert_family_contract(Duffing)        # or quick=True for a faster subset

See :mod:`scimeta.contract` for the checks and their bounds; ``scimeta check NAME``
prints the same table from the command line.
"""

from __future__ import annotations

from .contract import ContractReport, check_family
from .errors import FamilyContractError
from .family import ProblemFamily


def assert_family_contract(family: str | type[ProblemFamily] | ProblemFamily, *,
                           quick: bool = False) -> ContractReport:
    """Run the family contract; return the report if every check passes.

    ``family`` is a registered name, a :class:`~scimeta.family.ProblemFamily` subclass
    or an instance. On failure raises :class:`~scimeta.errors.FamilyContractError` (an
    ``AssertionError``, so pytest reports a failed test) whose message is the one-line
    summary followed by the table of every check, measured value and bound.
    """
    report = check_family(family, quick=quick)
    if not report.passed:
        raise FamilyContractError(f"{report.summary()}\n{report.table()}")
    return report
