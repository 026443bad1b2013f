"""Names of a package that load on first use (PEP 562), so the CLI starts fast.

``scimeta``, ``scimeta.data`` and ``scimeta.runtime`` export names whose modules
import torch, scipy or xarray; listing them in a table and loading each on first
access keeps ``scimeta --help``, ``problems``, ``info`` and ``validate`` free of those
imports.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, namespace: dict[str, Any],
                 table: Mapping[str, tuple[str, str]]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` whose public names are ``table``:
    name -> (module relative to the package, attribute; "" for the module itself).
    A loaded value is cached in ``namespace`` (the package's globals)."""

    def getattr_(name: str) -> Any:
        try:
            module, attr = table[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = importlib.import_module(module, package)
        if attr:
            value = getattr(value, attr)
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted({*namespace, *table})

    return getattr_, dir_
