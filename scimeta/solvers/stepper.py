"""The interface of a time stepper for semilinear systems ``du/dt = L u + N(u)``.

A stepper advances spectra ``u`` ``[N, *modes, C]`` under a diagonal linear operator
``L`` (broadcastable to ``u``, 1/time) and a nonlinear term ``N`` (a callable on
spectra), and declares its order of accuracy in time, :attr:`Stepper.order`: with a
smooth solution, halving the step divides the global error by about ``2**order``.
Convergence tests read the declared order and check the observed one against it.
:class:`~scimeta.solvers.etdrk4.ETDRK4` is the implementation the spectral families
use (:class:`~scimeta.pde.SpectralPdeFamily`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np

#: ``N(u)``: spectra ``[N, *modes, C]`` -> spectra of the same shape.
Nonlinear = Callable[[np.ndarray], np.ndarray]
#: Map from the evolved spectra to what is recorded at each output time.
Observe = Callable[[np.ndarray], np.ndarray]


@runtime_checkable
class Stepper(Protocol):
    """A fixed-step integrator of ``du/dt = L u + N(u)`` with a declared order."""

    #: Short name, e.g. ``"etdrk4"``.
    name: ClassVar[str]
    #: Order of accuracy in time of the global error (ETDRK4: 4).
    order: ClassVar[int]

    def solve(self, u0: np.ndarray, lin: np.ndarray, nonlinear: Nonlinear, t: np.ndarray,
              max_step: float, observe: Observe | None = None) -> np.ndarray:
        """``observe(u)`` at every time of ``t`` ``[T]``, as ``[N, T, ...]``.

        u0 ``[N, *modes, C]``; lin broadcastable to u0 (1/time); ``max_step`` the
        largest internal step (time units). Each output interval is split into equal
        steps, so outputs land exactly on ``t``.
        """
        ...
