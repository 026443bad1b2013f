"""Surrogate networks: coordinate MLPs (Fourier features, SIREN), vector-field nets.

Any ``nn.Module`` works with :mod:`scimeta.meta`; these are the ones the
package ships for coordinate regression and forecasting.
"""

from ._activations import ACTIVATIONS as ACTIVATIONS
from ._activations import Sine as Sine
from ._conv_field import ConvVectorField as ConvVectorField
from ._conv_field import GridVectorField as GridVectorField
from ._dynamics import Forecaster as Forecaster
from ._dynamics import VectorFieldNet as VectorFieldNet
from ._dynamics import rk4_rollout as rk4_rollout
from ._fourier_field import FourierVectorField as FourierVectorField
from ._fourier_field import SpectralConv2d as SpectralConv2d
from ._mlp import CoordinateMLP as CoordinateMLP
from ._rescaled import Rescaled as Rescaled

__all__ = [
    "ACTIVATIONS", "ConvVectorField", "CoordinateMLP", "Forecaster", "FourierVectorField",
    "GridVectorField", "Rescaled", "Sine", "SpectralConv2d", "VectorFieldNet", "rk4_rollout",
]
