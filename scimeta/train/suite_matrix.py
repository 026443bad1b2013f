"""Matrix suites: a ``[matrix]`` table of axes and tables whose names use them.

A suite file may declare named axes, each a non-empty list of values::

    [matrix]
    algorithm = ["maml", "fomaml"]
    seed = [0, 1, 2]

A store, run, evaluation, posterior or landscape whose name holds ``{axis}``
placeholders is a template: it stands for one table per combination of the axes its
name uses (in the order the axes are declared in ``[matrix]``, each axis's values in
their listed order), named by substituting the values (``[runs."{algorithm}-s{seed}"]``
gives ``maml-s0``, ``maml-s1``, ..., ``fomaml-s2``). Inside a template a string that
is exactly ``"{axis}"`` becomes the value itself (an integer stays an integer); a
placeholder in a longer string is replaced by the value's text. An axis of tables
(``problem = [{family = "oscillator", regime = "unforced-train"}, ...]``) is read as
``{problem.family}``. ``{{`` and ``}}`` are literal braces. A placeholder in a body
that the name does not use, an unknown axis, or two tables with one name are errors.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from ..errors import ConfigError

#: ``{axis}`` or ``{axis.key}``; ``{{``/``}}`` are escapes
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?\}")
_SECTIONS = ("stores", "runs", "evaluations", "posteriors", "landscapes")


def check_axes(matrix: Any) -> dict[str, list]:
    """Check a ``[matrix]`` table: axis name -> non-empty list of scalars or tables."""
    if not isinstance(matrix, dict):
        raise ConfigError(f"suite.matrix: expected a table of axes, got {type(matrix).__name__}")
    for axis, values in matrix.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", axis):
            raise ConfigError(f"suite.matrix.{axis}: an axis name must be a plain identifier "
                              "(letters, digits, _)")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"suite.matrix.{axis}: expected a non-empty list of values, "
                              f"got {values!r}")
        kinds = {type(v) for v in values}
        if len(kinds) > 1 or not kinds <= {str, int, float, bool, dict}:
            raise ConfigError(f"suite.matrix.{axis}: values must all be strings, all numbers "
                              f"or all tables, got {values!r}")
    return matrix


def _axes_in(text: str) -> list[str]:
    return [m.group(1) for m in _PLACEHOLDER.finditer(text) if m.group(1)]


def _lookup(axis: str, key: str | None, combo: dict[str, Any], where: str) -> Any:
    if axis not in combo:
        raise ConfigError(f"{where}: placeholder {{{axis}}} is not an axis of this table's "
                          f"name (its name uses: {', '.join(combo) or 'none'})")
    value = combo[axis]
    if key is None:
        return value
    if not isinstance(value, dict) or key not in value:
        raise ConfigError(f"{where}: placeholder {{{axis}.{key}}}: matrix.{axis} values have "
                          f"no key {key!r}")
    return value[key]


def substitute(value: Any, combo: dict[str, Any], where: str) -> Any:
    """``value`` (a string, list or table, recursively) with ``combo``'s values in
    place of its placeholders."""
    if isinstance(value, dict):
        return {substitute(k, combo, where): substitute(v, combo, f"{where}.{k}")
                for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, combo, where) for v in value]
    if not isinstance(value, str):
        return value
    whole = _PLACEHOLDER.fullmatch(value)
    if whole and whole.group(1):
        return _lookup(whole.group(1), whole.group(2), combo, where)

    def one(m: re.Match) -> str:
        if not m.group(1):
            return m.group(0)[0]
        return str(_lookup(m.group(1), m.group(2), combo, where))

    return _PLACEHOLDER.sub(one, value)


def expand(raw: dict, matrix: dict[str, list]) -> dict:
    """The suite table ``raw`` with every template table replaced by its expansion.

    Args:
        raw: the suite file's tables (without ``matrix``).
        matrix: the checked axes (:func:`check_axes`).

    Returns:
        A new table of concrete ``stores``/``runs``/``evaluations``/``posteriors``/
        ``landscapes``.
    """
    out = dict(raw)
    for section in _SECTIONS:
        table = raw.get(section)
        if not isinstance(table, dict):
            continue
        expanded: dict[str, Any] = {}
        for name, body in table.items():
            used = _axes_in(name)
            for axis in (a for a in used if a not in matrix):
                raise ConfigError(f"suite.{section}.{name}: {{{axis}}} is not an axis of "
                                  f"[matrix] (axes: {', '.join(matrix) or 'none'})")
            axes = [a for a in matrix if a in used]
            for values in itertools.product(*(matrix[a] for a in axes)):
                combo = dict(zip(axes, values, strict=True))
                where = f"suite.{section}.{name}"
                concrete = substitute(name, combo, where)
                if not isinstance(concrete, str):
                    raise ConfigError(f"{where}: a name must be text, not only a placeholder "
                                      "of an axis of tables")
                if concrete in expanded:
                    raise ConfigError(f"{where}: the name {concrete!r} is given twice (make "
                                      "every axis value appear in the name)")
                expanded[concrete] = substitute(body, combo, where)
        out[section] = expanded
    return out
