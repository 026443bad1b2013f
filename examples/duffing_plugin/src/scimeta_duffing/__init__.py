"""A scimeta task family shipped by its own package: the forced Duffing oscillator."""

from .duffing import Duffing as Duffing

__all__ = ["Duffing"]
