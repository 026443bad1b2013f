"""Lotka-Volterra predator-prey system.

Data card
---------
Equation: x' = alpha x - beta x y,  y' = delta x y - gamma y, state (x prey, y predator).
LaTeX: \\dot x = \\alpha x - \\beta x y,\\quad \\dot y = \\delta x y - \\gamma y.
First integral: V = delta x - gamma ln x + beta y - alpha ln y (:meth:`LotkaVolterra.invariant`).

Parameters (all rates in 1/time; populations and time are dimensionless):
``alpha`` prey growth rate; ``beta`` predation rate per predator; ``delta`` predator
growth per prey; ``gamma`` predator death rate.

Box regimes (disjoint through (beta, delta); alpha, gamma in [0.25, 1.0] throughout):
``train`` beta, delta in [0.25, 1.25] without the square (0.625, 0.875)^2;
``test-interpolate`` beta, delta in [0.625, 0.875]; ``test-extrapolate`` beta, delta
in [1.25, 1.75]. Initial state (x0, y0) ~ U(1, 2)^2; output grid t in [0, 20], 201 points.

Literature regimes (fixed environments, drawn round-robin by task index; same
initial-state law U(1, 2)^2; output grid t in [0, 10], dt = 0.5, 21 points):
``leads`` the 10 environments of LEADS (Yin et al., NeurIPS 2021), beta = delta = 0.5 and
(alpha, gamma) in {(0.5, 0.5), (0.25, 0.5), (0.75, 0.5), (1.0, 0.5), (0.5, 0.25),
(0.5, 0.75), (0.5, 1.0), (0.25, 0.25), (0.75, 0.75), (1.0, 1.0)};
``coda-train`` CoDA (Kirchmeyer et al., ICML 2022), alpha = gamma = 0.5,
(beta, delta) in {0.5, 0.75, 1.0}^2; ``coda-adapt`` alpha = gamma = 0.5,
(beta, delta) in {0.625, 1.125}^2. Values checked against the authors' code
(yuan-yin/LEADS ``datasets/__init__.py``; yuan-yin/CoDA ``train.py`` and
``adaptation.py``), which also draws y0 = 1 + U(0, 1)^2. Those datasets were solved with
RK45 at default tolerances on ``np.arange(0, 10, 0.5)`` (20 points, last t = 9.5); here
the grid includes t = 10 and the solver is the tight one below.

Solver: scipy DOP853, rtol = 1e-10, atol = 1e-14. The tiny atol matters: large orbits
dip to populations ~1e-5, where atol = 1e-10 lets V drift by up to ~3e-6 on t in
[0, 100] (measured over the box regimes); with atol = 1e-14 the worst drift measured
is ~3e-9. Verified: drift of V <= 1e-8 on t in [0, 100] for every literature
environment and samples of every box regime, while RK45 at default tolerances drifts
by > 1e-4 on the same problem (tests/test_ode_families.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from scimeta.family import OdeFamily, SolverInfo
from scimeta.params import ParamSpec, Regime, TimeGrid

_INF = math.inf
_LIT_TIME = TimeGrid(0.0, 10.0, 21)

LEADS_ALPHA_GAMMA = (
    (0.5, 0.5), (0.25, 0.5), (0.75, 0.5), (1.0, 0.5), (0.5, 0.25),
    (0.5, 0.75), (0.5, 1.0), (0.25, 0.25), (0.75, 0.75), (1.0, 1.0),
)
CODA_TRAIN_BETA_DELTA = tuple((b, d) for b in (0.5, 0.75, 1.0) for d in (0.5, 0.75, 1.0))
CODA_ADAPT_BETA_DELTA = tuple((b, d) for b in (0.625, 1.125) for d in (0.625, 1.125))


def _point(alpha: float, beta: float, delta: float, gamma: float) -> tuple[float, ...]:
    return (alpha, beta, delta, gamma)  # order of LotkaVolterra.params


def _regimes() -> dict[str, Regime]:
    rates = {"alpha": (0.25, 1.0), "gamma": (0.25, 1.0)}
    hole = (0.625, 0.875)
    boxes = {
        "train": ((0.25, 1.25), ({"beta": hole, "delta": hole},)),
        "test-interpolate": (hole, ()),
        "test-extrapolate": ((1.25, 1.75), ()),
    }
    out = {}
    for name, (bd, exclude) in boxes.items():
        desc = f"beta, delta in {list(bd)}" + (f" minus {hole}^2" if exclude else "")
        out[name] = Regime(name, box={**rates, "beta": bd, "delta": bd}, exclude=exclude,
                           description=desc + "; alpha, gamma in [0.25, 1.0]")
    out["leads"] = Regime(
        "leads", points=tuple(_point(a, 0.5, 0.5, g) for a, g in LEADS_ALPHA_GAMMA),
        description="LEADS (Yin et al. 2021): 10 (alpha, gamma) environments, beta = delta = 0.5",
        time=_LIT_TIME)
    out["coda-train"] = Regime(
        "coda-train", points=tuple(_point(0.5, b, d, 0.5) for b, d in CODA_TRAIN_BETA_DELTA),
        description="CoDA (Kirchmeyer et al. 2022) training: (beta, delta) in {0.5, 0.75, 1}^2",
        time=_LIT_TIME)
    out["coda-adapt"] = Regime(
        "coda-adapt", points=tuple(_point(0.5, b, d, 0.5) for b, d in CODA_ADAPT_BETA_DELTA),
        description="CoDA adaptation: (beta, delta) in {0.625, 1.125}^2", time=_LIT_TIME)
    return out


class LotkaVolterra(OdeFamily):
    name = "lotka_volterra"
    summary = "Lotka-Volterra predator-prey system"
    equation = "x' = alpha*x - beta*x*y; y' = delta*x*y - gamma*y"
    equation_latex = r"\dot x = \alpha x - \beta x y,\quad \dot y = \delta x y - \gamma y"
    params = (
        ParamSpec("alpha", "1/time", (0.0, _INF), "prey growth rate"),
        ParamSpec("beta", "1/time", (0.0, _INF), "predation rate per unit predator"),
        ParamSpec("delta", "1/time", (0.0, _INF), "predator growth rate per unit prey"),
        ParamSpec("gamma", "1/time", (0.0, _INF), "predator death rate"),
    )
    state_names = ("x", "y")
    state_units = ("1", "1")
    time_unit = "1"
    time = TimeGrid(0.0, 20.0, 201)
    regimes = _regimes()
    solver = SolverInfo(
        "scipy.integrate.solve_ivp", "DOP853", rtol=1e-10, atol=1e-14,
        note="atol far below rtol: orbits dip to populations ~1e-5, where atol = 1e-10 "
             "lets the first integral drift by up to ~3e-6 on t in [0, 100]",
    )
    initial_box = ((1.0, 2.0), (1.0, 2.0))

    def rhs(self, t: Any, y: Sequence[Any], p: Sequence[Any], xp: Any) -> tuple[Any, ...]:
        x, yy = y
        alpha, beta, delta, gamma = p
        return alpha * x - beta * x * yy, delta * x * yy - gamma * yy

    @staticmethod
    def invariant(params: Any, y: Any) -> Any:
        """V = delta x - gamma ln x + beta y - alpha ln y, conserved along solutions.

        ``params`` ``[..., 4]`` (alpha, beta, delta, gamma), ``y`` ``[..., 2]``; numpy
        arrays or torch tensors (the result has the broadcast batch shape).
        """
        import torch

        xp = torch if isinstance(y, torch.Tensor) else np
        if xp is np:
            params, y = np.asarray(params, dtype=np.float64), np.asarray(y, dtype=np.float64)
        alpha, beta, delta, gamma = (params[..., i] for i in range(4))
        x, yy = y[..., 0], y[..., 1]
        return delta * x - gamma * xp.log(x) + beta * yy - alpha * xp.log(yy)
