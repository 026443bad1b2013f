"""scimeta: physics-informed meta-learning for parameterized ODE/PDE task families."""

from . import problems as problems
from ._version import __version__ as __version__
from .errors import ScimetaError as ScimetaError
from .family import OdeFamily as OdeFamily
from .family import ProblemFamily as ProblemFamily
from .params import ParamSpec as ParamSpec
from .params import Regime as Regime
from .params import TimeGrid as TimeGrid
from .params import split_regimes as split_regimes
from .pde import PdeFamily as PdeFamily
from .pde import SpectralPdeFamily as SpectralPdeFamily
