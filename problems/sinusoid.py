"""Sinusoid regression of Finn et al. 2017 (MAML), the standard few-shot regression task.

Data card
---------
Equation: y(x) = A sin(x - phi) on x in [-5, 5]. As the equation of this store it is
the first-order ODE y' = A cos(x - phi) with y(-5) = A sin(-5 - phi), which the closed
form satisfies exactly; :meth:`Sinusoid.residual` is ``dy/dx - A cos(x - phi)``, so a
physics-informed run (``meta.physics_weight > 0``) has an exact residual.
LaTeX: y = A\\sin(x - \\varphi),\\ \\; y' = A\\cos(x - \\varphi).

Coordinate: scimeta stores fields on a grid over the family's *time* axis, so the
input x plays the role of t: the ``time`` axis of the store **is x**, t in [-5, 5],
1001 equispaced points (spacing 0.01), unit "1". There is no spatial axis. The
output is y alone (one channel), as in Finn et al., who regress y only.

Parameters: ``A`` amplitude [1]; ``phi`` phase [rad]. State: ``y`` [1].

Regimes (boxes half-open, ``low <= v < high``):
``train`` A in [0.1, 5), phi in [0, pi): Finn et al.'s task distribution (uniform);
``test`` the same box, for held-out tasks drawn with other seeds (the protocol of the
paper: test tasks come from the training distribution, so ``test`` deliberately
overlaps ``train`` and is not part of the train/test split that ``scimeta check``
keeps disjoint); ``test-extrapolate`` A in [5, 7), phi in [0, pi): out of the
training range, disjoint from ``train``. There is no ``test-interpolate``: Finn's
training box has no hole, and cutting one would change the training distribution.
A validation band for rate selection is a cut of ``test-extrapolate`` (the suite
``problems/suites/finn-sinusoid.toml`` uses A in [5, 5.5) for validation and
[5.5, 7) for the extrapolation test).

Initial state: none to sample; a task is fixed by (A, phi). ``sample_initial_state``
returns the placeholder 0 (as ``poisson`` does), so the stored ``y0`` is that
placeholder, not y(-5); the stored field at t = -5 is the solution.

Solver: the closed form, evaluated in float64 (``numpy.sin``); exact to round-off
(about 1e-16 relative). Stored fields are float32 by default (6e-8 relative
rounding); generate with ``--dtype float64`` to keep float64.

Departures from Finn et al.: x is drawn from the 1001-point grid, not continuously
(spacing 0.01, well below the K = 5..20 points' typical gaps); each stored task keeps
its support/query draw, so training cycles through a finite pool of tasks instead of
drawing a fresh task every meta-batch (make the training store large).
"""

from __future__ import annotations

import math

import numpy as np

from scimeta.family import STATUS_NON_FINITE, STATUS_OK, ProblemFamily, SolverInfo
from scimeta.params import ParamSpec, Regime, TimeGrid

#: Finn et al. 2017's ranges: amplitude U[0.1, 5], phase U[0, pi].
AMPLITUDE = (0.1, 5.0)
PHASE = (0.0, math.pi)
#: Out-of-range amplitudes for the extrapolation regime.
EXTRAPOLATE_AMPLITUDE = (5.0, 7.0)


def sinusoid(params: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``A sin(x - phi)`` for each task: params ``[N, 2]`` (A, phi), x ``[T]`` -> ``[N, T]``.

    Raises ``ValueError`` naming the shape when params is not ``[N, 2]``.
    """
    p = np.atleast_2d(np.asarray(params, dtype=np.float64))
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"params has shape {np.shape(params)}; expected [N, 2] (A, phi)")
    x = np.asarray(x, dtype=np.float64)
    return p[:, :1] * np.sin(x[None, :] - p[:, 1:2])


def _regimes() -> dict[str, Regime]:
    finn = {"A": AMPLITUDE, "phi": PHASE}
    return {
        "train": Regime("train", box=finn, closed=False,
                        description="A in [0.1, 5), phi in [0, pi): Finn et al. 2017"),
        "test": Regime("test", box=finn, closed=False,
                       description="the training distribution, for held-out tasks (other "
                                   "seeds); overlaps train by design"),
        "test-extrapolate": Regime("test-extrapolate",
                                   box={"A": EXTRAPOLATE_AMPLITUDE, "phi": PHASE},
                                   closed=False,
                                   description="A in [5, 7), phi in [0, pi): amplitudes "
                                               "above the training range"),
    }


class Sinusoid(ProblemFamily):
    """y = A sin(x - phi) on x in [-5, 5] (stored on the time axis), one channel ``y``."""

    name = "sinusoid"
    summary = "sinusoid regression of Finn et al. 2017 (MAML): y = A sin(x - phi)"
    equation = "y = A*sin(t - phi), i.e. y' = A*cos(t - phi), y(-5) = A*sin(-5 - phi); t is x"
    equation_latex = r"y = A\sin(x - \varphi),\quad y' = A\cos(x - \varphi)"
    params = (
        ParamSpec("A", "1", (0.0, math.inf), "amplitude"),
        ParamSpec("phi", "rad", (-math.inf, math.inf), "phase"),
    )
    state_names = ("y",)
    state_units = ("1",)
    time_unit = "1"
    time = TimeGrid(-5.0, 5.0, 1001)
    regimes = _regimes()
    solver = SolverInfo("closed form", "exact",
                        note="y = A*sin(t - phi) evaluated in float64; no time stepping, "
                             "nothing to refine; the time axis t is the input x")

    def sample_initial_state(self, rng, regime=None):
        """The placeholder ``[0.0]`` (shape ``[C]``): the task is fixed by its params."""
        return np.zeros(len(self.state_names))

    def solve_batch(self, params, y0, t):
        """Closed form: fields ``[N, T, 1]`` float64, status ``[N]``; ``y0`` is unused."""
        fields = sinusoid(params, t)[..., None]
        finite = np.isfinite(fields.reshape(len(fields), -1)).all(axis=1)
        fields[~finite] = np.nan
        status = np.where(finite, STATUS_OK, STATUS_NON_FINITE).astype(np.int8)
        return fields, status

    def residual(self, t, y, dydt, params, **derivs):
        """``dy/dt - A cos(t - phi)``: t ``[...]``, y and dydt ``[..., 1]``, params
        ``[..., 2]`` -> ``[..., 1]``; zero on y = A sin(t - phi) + const."""
        import torch

        amp, phase = params[..., :1], params[..., 1:2]
        return dydt - amp * torch.cos(t[..., None] - phase)
