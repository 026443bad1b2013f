"""Shared pieces of the command modules: the help layout, keyword -> flag wording.

Command modules import the library inside each command, not at the top, so that
building the parser (``scimeta --help``) and light verbs never import torch.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import ScimetaError
from ..runtime.signals import EXIT_REQUEUE

__all__ = ["EXIT_REQUEUE", "HelpFormatter", "add_parser", "as_flags", "keyword_flags"]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends ``(default: X)`` to an option's help, except for defaults that say
    nothing (None, False, empty lists); such options describe their default in words."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False, []):
            return action.help
        return super()._get_help_string(action)


def add_parser(sub: argparse._SubParsersAction, name: str, **kwargs) -> argparse.ArgumentParser:
    """``sub.add_parser`` with the shared help layout."""
    kwargs.setdefault("formatter_class", HelpFormatter)
    if "help" in kwargs:
        kwargs.setdefault("description", kwargs["help"][:1].upper() + kwargs["help"][1:] + ".")
    return sub.add_parser(name, **kwargs)


def as_flags(message: str, flags: dict[str, str]) -> str:
    """Reword a library message for the command line.

    For each ``keyword -> flag``: ``keyword=True`` becomes the flag, and a message that
    starts with the keyword (``"out 'x.h5' exists"``) starts with the flag instead.
    """
    for keyword, flag in flags.items():
        message = re.sub(rf"\b{keyword}=True\b", flag, message)
    for keyword, flag in flags.items():
        message = re.sub(rf"^{keyword}\b", flag, message)
    return message


@contextmanager
def keyword_flags(**flags: str) -> Iterator[None]:
    """Re-raise library errors with the command's flags in place of keyword arguments."""
    try:
        yield
    except ScimetaError as exc:
        text = as_flags(str(exc), flags)
        if text == str(exc):
            raise
        try:
            new = type(exc)(text)
        except TypeError:  # an error class with another constructor: keep it as it is
            raise exc from None
        raise new from exc
