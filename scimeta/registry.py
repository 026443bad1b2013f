"""Registry of task families: the built-ins plus any installed through entry points.

A lab package adds its own family by declaring, in its ``pyproject.toml``::

    [project.entry-points."scimeta.problems"]
    my_family = "my_lab.families:MyFamily"

where ``MyFamily`` is a :class:`~scimeta.family.ProblemFamily` subclass (or an
instance). Built-in families are imported lazily, the first time they are asked for.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points

from .errors import ConfigError, unknown_name
from .family import ProblemFamily

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "scimeta.problems"

#: name -> "module:attribute" for the families shipped with scimeta.
BUILTIN: dict[str, str] = {}
_loaded: dict[str, ProblemFamily] = {}
_extra: dict[str, str | type[ProblemFamily] | ProblemFamily] = {}


def register(name: str, family: str | type[ProblemFamily] | ProblemFamily) -> None:
    """Register a family under ``name`` (a class, an instance or ``"module:attr"``)."""
    _ensure_builtins()
    if name in BUILTIN or name in _extra:
        raise ConfigError(f"a task family called {name!r} is already registered")
    _extra[name] = family


def _entry_points() -> dict[str, str]:
    found = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in BUILTIN:
            log.warning("entry point %r shadows a built-in family; ignored", ep.name)
            continue
        found[ep.name] = ep.value
    return found


def _ensure_builtins() -> None:
    if not BUILTIN:
        importlib.import_module("scimeta.problems")  # fills BUILTIN


def names() -> list[str]:
    """Names of every available family, sorted."""
    _ensure_builtins()
    return sorted({*BUILTIN, *_extra, *_entry_points()})


def _materialize(name: str, target) -> ProblemFamily:
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        target = getattr(importlib.import_module(module), attr)
    family = target() if isinstance(target, type) else target
    if not isinstance(family, ProblemFamily):
        raise ConfigError(f"family {name!r} resolves to {family!r}, not a ProblemFamily")
    return family


def get(name: str) -> ProblemFamily:
    """The family called ``name``; the error lists the known ones."""
    if name in _loaded:
        return _loaded[name]
    _ensure_builtins()
    target = BUILTIN.get(name) or _extra.get(name) or _entry_points().get(name)
    if target is None:
        raise unknown_name("task family", name, names())
    family = _materialize(name, target)
    _loaded[name] = family
    return family


@contextmanager
def registered(family: ProblemFamily) -> Iterator[ProblemFamily]:
    """Make ``get(family.name)`` return this instance for the duration of the block
    (e.g. a modified copy that a generator looks up by name); the previous entry is
    restored afterwards."""
    missing = object()
    before = _loaded.get(family.name, missing)
    _loaded[family.name] = family
    try:
        yield family
    finally:
        if before is missing:
            _loaded.pop(family.name, None)
        else:
            _loaded[family.name] = before  # type: ignore[assignment]
