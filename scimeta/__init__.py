"""scimeta: physics-informed meta-learning for parameterized ODE/PDE task families.

The names below load on first use (``scimeta.OdeFamily`` imports :mod:`scimeta.family`
then), so that ``import scimeta`` and the command line start fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports
from ._version import __version__ as __version__
from .errors import ScimetaError as ScimetaError

if TYPE_CHECKING:
    from . import problems as problems  # type: ignore[attr-defined]
    from .contract import check_family as check_family
    from .family import OdeFamily as OdeFamily
    from .family import ProblemFamily as ProblemFamily
    from .family import SolverInfo as SolverInfo
    from .params import ParamSpec as ParamSpec
    from .params import Regime as Regime
    from .params import TimeGrid as TimeGrid
    from .params import split_regimes as split_regimes
    from .pde import PdeFamily as PdeFamily
    from .pde import SpectralPdeFamily as SpectralPdeFamily

#: public name -> (module, attribute; "" for the module itself)
_LAZY: dict[str, tuple[str, str]] = {
    "problems": (".problems", ""),
    "OdeFamily": (".family", "OdeFamily"),
    "ProblemFamily": (".family", "ProblemFamily"),
    "SolverInfo": (".family", "SolverInfo"),
    "check_family": (".contract", "check_family"),
    "ParamSpec": (".params", "ParamSpec"),
    "Regime": (".params", "Regime"),
    "TimeGrid": (".params", "TimeGrid"),
    "split_regimes": (".params", "split_regimes"),
    "PdeFamily": (".pde", "PdeFamily"),
    "SpectralPdeFamily": (".pde", "SpectralPdeFamily"),
}

__all__ = sorted([*_LAZY, "ScimetaError", "__version__"])


__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)
