"""HDF5 task stores (schema v1): generation, reading, validation, summaries.

Typical use::

    from scimeta.data import GenerationConfig, generate, TaskReader
    generate(GenerationConfig("oscillator", "train", tasks=1000, seed=0), "train.h5")
    reader = TaskReader("train.h5")
    batch = reader.sample(25, numpy.random.default_rng(0))   # TaskBatch [25, K, d]
    ds = open_xarray("train.h5")                            # xarray.Dataset

The names below are loaded on first use, so that ``scimeta info`` or ``validate``
never import torch (the reader) or xarray (the xarray view).
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ..batch import TaskBatch as TaskBatch
    from . import manifest as manifest
    from .environments import EnvironmentReader as EnvironmentReader
    from .generate import GenerationConfig as GenerationConfig
    from .generate import generate as generate
    from .generate import parse_bounds as parse_bounds
    from .generate import task_seeds as task_seeds
    from .info import format_summary as format_summary
    from .info import summarize as summarize
    from .reader import TaskReader as TaskReader
    from .reader import collate as collate
    from .sampling import RULES as RULES
    from .schema import SCHEMA_VERSION as SCHEMA_VERSION
    from .validate import validate as validate
    from .xarray_view import open_xarray as open_xarray

#: public name -> (module relative to this package, attribute; "" for the module itself)
_LAZY: dict[str, tuple[str, str]] = {
    "TaskBatch": ("..batch", "TaskBatch"),
    "manifest": (".manifest", ""),
    "EnvironmentReader": (".environments", "EnvironmentReader"),
    "GenerationConfig": (".generate", "GenerationConfig"),
    "generate": (".generate", "generate"),
    "parse_bounds": (".generate", "parse_bounds"),
    "task_seeds": (".generate", "task_seeds"),
    "format_summary": (".info", "format_summary"),
    "summarize": (".info", "summarize"),
    "TaskReader": (".reader", "TaskReader"),
    "collate": (".reader", "collate"),
    "RULES": (".sampling", "RULES"),
    "SCHEMA_VERSION": (".schema", "SCHEMA_VERSION"),
    "validate": (".validate", "validate"),
    "open_xarray": (".xarray_view", "open_xarray"),
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)


class _Package(types.ModuleType):
    """Keeps ``scimeta.data.generate``/``validate`` the functions, as they always were.

    Importing a submodule sets the package attribute of the same name to the module;
    the eager ``from .generate import generate`` used to rebind it right after.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _LAZY.get(name, ("", ""))[1] == name:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
