"""Exceptions raised by scimeta.

Every error a user can trigger with bad input derives from :class:`ScimetaError`,
so the CLI can print it as one line and exit non-zero instead of a traceback.
One class per domain:

- configuration and arguments: :class:`ConfigError` (:class:`UnknownNameError`);
- HDF5 task stores: :class:`StoreError`;
- training runs and checkpoints: :class:`RunError` (:class:`CheckpointError`,
  :class:`TrainingDiverged`);
- reference solvers: :class:`SolverError` (:class:`SolverInputError`,
  :class:`SolverFailed`);
- the family contract: :class:`FamilyContractError`.

Each also derives from the builtin exception that fits (``ValueError``,
``OSError``, ...), so code that catches those keeps working.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ScimetaError(Exception):
    """Base class of every user-facing scimeta error."""


class ConfigError(ScimetaError, ValueError):
    """An argument, option or configuration value is not allowed."""


class UnknownNameError(ConfigError, KeyError):
    """A name (family, regime, parameter, config key) is not known."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class StoreError(ScimetaError, OSError):
    """An HDF5 task store is missing, unreadable, incomplete or of an unknown schema."""


class RunError(ScimetaError, OSError):
    """A training run directory is missing, broken or does not hold what was asked."""


class CheckpointError(RunError):
    """A checkpoint file is missing, not a scimeta checkpoint, or of another format."""


class TrainingDiverged(RunError):
    """The meta-loss became non-finite; the last good checkpoint is kept."""


class SolverError(ScimetaError):
    """Base class of the reference solvers' errors."""


class SolverInputError(SolverError, ValueError):
    """A solver was called with arguments it cannot work with (grid, steps, shapes)."""


class SolverFailed(SolverError, RuntimeError):
    """A reference solver did not reach the end of the time span."""


class FamilyContractError(ScimetaError, AssertionError):
    """A problem family breaks the contract every family must pass (``scimeta check``)."""


def unknown_name(
    kind: str, value: str, known: Iterable[str], where: str = ""
) -> UnknownNameError:
    """Build an error naming ``value``, the known names and the closest match.

    ``unknown_name("regime", "trian", [...], "of family 'oscillator'")`` reads
    "unknown regime 'trian' of family 'oscillator'; known: ...; did you mean 'train'?".
    """
    known = sorted(known)
    close = difflib.get_close_matches(value, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    where = f" {where}" if where else ""
    return UnknownNameError(
        f"unknown {kind} {value!r}{where}; known: {', '.join(known)}{hint}"
    )
