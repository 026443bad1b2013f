"""Exceptions raised by scimeta.

Every error a user can trigger with bad input derives from :class:`ScimetaError`,
so the CLI can print it as one line and exit non-zero instead of a traceback.
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


class SolverFailed(ScimetaError, RuntimeError):
    """A reference solver did not reach the end of the time span."""


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
