"""Glycolytic oscillator: 7-species yeast glycolysis model.

Data card
---------
Model of Ruoff et al. (2003) in the form of Daniels & Nemenman (2015), as used by
CoDA (Kirchmeyer et al., ICML 2022). With v1 = k1 S1 S6 / (1 + (S6/K1)^q):
  S1' = J0 - v1
  S2' = 2 v1 - k2 S2 (N - S5) - k6 S2 S5
  S3' = k2 S2 (N - S5) - k3 S3 (A - S6)
  S4' = k3 S3 (A - S6) - k4 S4 S5 - kappa (S4 - S7)
  S5' = k2 S2 (N - S5) - k4 S4 S5 - k6 S2 S5
  S6' = -2 v1 + 2 k3 S3 (A - S6) - k5 S6
  S7' = psi kappa (S4 - S7) - k S7
LaTeX: \\dot S_1 = J_0 - \\frac{k_1 S_1 S_6}{1 + (S_6/K_1)^q}, \\dots (as above).
S1 glucose, S2 glyceraldehyde-3-phosphate + dihydroxyacetone phosphate, S3
1,3-bisphosphoglycerate, S4 intracellular pyruvate/acetaldehyde, S5 NADH, S6 ATP,
S7 extracellular pyruvate/acetaldehyde.

Parameters: ``k1`` rate constant of the ATP-inhibited glucose uptake [1/(mM min)];
``K1`` inhibition constant of that step [mM]. Fixed constants (:data:`CONSTANTS`):
J0 = 2.5 mM/min, k2 = 6, k3 = 16, k4 = 100, k6 = 12 [1/(mM min)], k5 = 1.28,
k = 1.8, kappa = 13 [1/min], q = 4, psi = 0.1 [1], N = 1, A = 4 [mM]. They are kept
out of the parameter vector so that tasks differ only in (k1, K1), as in CoDA.
Nominal values k1 = 100, K1 = 0.52 (regime ``nominal``) give a limit cycle of
period ~1.17 min; for larger K1 many trajectories settle to a steady state.

Box regimes (k1 in [80, 100] throughout except where noted): ``train`` K1 in
[0.5, 1.0] without the box k1 in (82.5, 87.5) x K1 in (0.55, 0.70);
``test-interpolate`` that box; ``test-extrapolate`` K1 in [0.3, 0.5] (stronger
inhibition, sustained oscillations). Default output grid t in [0, 5] min, 101 points.
Literature regimes (fixed environments, round-robin; grid t in [0, 1] min, dt = 0.05,
21 points): ``coda-train`` k1 in {100, 90, 80} x K1 in {1, 0.75, 0.5};
``coda-adapt`` k1 in {85, 95} x K1 in {0.625, 0.875}.
Initial state S_i ~ U(lo_i, hi_i) with (lo, hi) = (0.15, 1.60), (0.19, 2.16),
(0.04, 0.20), (0.10, 0.35), (0.08, 0.30), (0.14, 2.67), (0.05, 0.10) mM.

Sources: the equations, every constant, the CoDA environments, the initial ranges
and CoDA's horizon (T = 1, dt = 0.05, on ``np.arange(0, 1, 0.05)``, i.e. 20 points
ending at 0.95; RK45 at default tolerances) were checked against the CoDA code
(yuan-yin/CoDA ``data.py``, ``train.py``, ``adaptation.py``); K1 = 0.52 as the nominal
value appears in independent re-implementations of Daniels & Nemenman's model. The
units (mM, min) follow Ruoff et al. (2003) and were not checked against the paper.

Solver: scipy DOP853, rtol = atol = 1e-10. Verified by self-convergence on t in
[0, 5]: rtol = atol = 1e-8 vs 1e-12 agree to <= 1e-4 relative (measured 3.7e-7 at the
nominal parameters, 1.9e-5 at k1 = 82, K1 = 0.7), and the 1e-10 solution is >= 5x
closer to the 1e-12 one (measured 24-46x) (tests/test_ode_families.py). The global
error is ~1e3 times the tolerance here: the default's error against rtol = atol =
1e-13 is <= 8e-7 relative (per-component max scaling; worst over 48 draws across the
regimes and the test cases), not 1e-10.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import MappingProxyType
from typing import Any

from scimeta.family import OdeFamily, SolverInfo
from scimeta.params import ParamSpec, Regime, TimeGrid

_INF = math.inf
_LIT_TIME = TimeGrid(0.0, 1.0, 21)

#: Fixed rate constants and totals of the model (units in the module docstring).
CONSTANTS = MappingProxyType({
    "J0": 2.5, "k2": 6.0, "k3": 16.0, "k4": 100.0, "k5": 1.28, "k6": 12.0,
    "k": 1.8, "kappa": 13.0, "q": 4.0, "psi": 0.1, "N": 1.0, "A": 4.0,
})

#: CoDA's initial-concentration ranges [mM], one (low, high) per species.
INITIAL_RANGES = (
    (0.15, 1.60), (0.19, 2.16), (0.04, 0.20), (0.10, 0.35),
    (0.08, 0.30), (0.14, 2.67), (0.05, 0.10),
)


def _regimes() -> dict[str, Regime]:
    k1 = (80.0, 100.0)
    hole = {"k1": (82.5, 87.5), "K1": (0.55, 0.70)}
    return {
        "train": Regime("train", box={"k1": k1, "K1": (0.5, 1.0)}, exclude=(hole,),
                        description="k1 in [80, 100], K1 in [0.5, 1.0] minus "
                                    "(82.5, 87.5) x (0.55, 0.70)"),
        "test-interpolate": Regime("test-interpolate", box=hole,
                                   description="k1 in [82.5, 87.5], K1 in [0.55, 0.70]"),
        "test-extrapolate": Regime("test-extrapolate", box={"k1": k1, "K1": (0.3, 0.5)},
                                   description="k1 in [80, 100], K1 in [0.3, 0.5]"),
        "nominal": Regime("nominal", points=((100.0, 0.52),),
                          description="Daniels & Nemenman (2015) nominal k1 = 100, K1 = 0.52"),
        "coda-train": Regime(
            "coda-train",
            points=tuple((a, b) for a in (100.0, 90.0, 80.0) for b in (1.0, 0.75, 0.5)),
            description="CoDA (Kirchmeyer et al. 2022) training: k1 x K1 in "
                        "{100, 90, 80} x {1, 0.75, 0.5}",
            time=_LIT_TIME),
        "coda-adapt": Regime(
            "coda-adapt",
            points=tuple((a, b) for a in (85.0, 95.0) for b in (0.625, 0.875)),
            description="CoDA adaptation: k1 x K1 in {85, 95} x {0.625, 0.875}",
            time=_LIT_TIME),
    }


class Glycolytic(OdeFamily):
    name = "glycolytic"
    summary = "7-species glycolytic oscillator (Daniels & Nemenman 2015)"
    equation = (
        "v1 = k1*S1*S6/(1 + (S6/K1)**q); S1' = J0 - v1; "
        "S2' = 2*v1 - k2*S2*(N - S5) - k6*S2*S5; S3' = k2*S2*(N - S5) - k3*S3*(A - S6); "
        "S4' = k3*S3*(A - S6) - k4*S4*S5 - kappa*(S4 - S7); "
        "S5' = k2*S2*(N - S5) - k4*S4*S5 - k6*S2*S5; "
        "S6' = -2*v1 + 2*k3*S3*(A - S6) - k5*S6; S7' = psi*kappa*(S4 - S7) - k*S7"
    )
    equation_latex = (
        r"v_1 = \frac{k_1 S_1 S_6}{1 + (S_6/K_1)^q},\ \dot S_1 = J_0 - v_1,\ "
        r"\dot S_2 = 2v_1 - k_2 S_2(N - S_5) - k_6 S_2 S_5,\ "
        r"\dot S_3 = k_2 S_2(N - S_5) - k_3 S_3(A - S_6),\ "
        r"\dot S_4 = k_3 S_3(A - S_6) - k_4 S_4 S_5 - \kappa(S_4 - S_7),\ "
        r"\dot S_5 = k_2 S_2(N - S_5) - k_4 S_4 S_5 - k_6 S_2 S_5,\ "
        r"\dot S_6 = -2v_1 + 2k_3 S_3(A - S_6) - k_5 S_6,\ "
        r"\dot S_7 = \psi\kappa(S_4 - S_7) - k S_7"
    )
    params = (
        ParamSpec("k1", "1/(mM min)", (0.0, _INF), "rate constant of ATP-inhibited uptake"),
        ParamSpec("K1", "mM", (0.0, _INF), "ATP inhibition constant of the uptake step"),
    )
    state_names = ("S1", "S2", "S3", "S4", "S5", "S6", "S7")
    state_units = ("mM",) * 7
    time_unit = "min"
    time = TimeGrid(0.0, 5.0, 101)
    regimes = _regimes()
    solver = SolverInfo("scipy.integrate.solve_ivp", "DOP853", rtol=1e-10, atol=1e-10)
    initial_box = INITIAL_RANGES
    constants = CONSTANTS

    def rhs(self, t: Any, y: Sequence[Any], p: Sequence[Any], xp: Any) -> tuple[Any, ...]:
        s1, s2, s3, s4, s5, s6, s7 = y
        k1, inhib = p
        c = CONSTANTS
        v1 = k1 * s1 * s6 / (1 + (s6 / inhib) ** c["q"])
        v2 = c["k2"] * s2 * (c["N"] - s5)
        v3 = c["k3"] * s3 * (c["A"] - s6)
        v4 = c["k4"] * s4 * s5
        v6 = c["k6"] * s2 * s5
        vk = c["kappa"] * (s4 - s7)
        return (
            c["J0"] - v1,
            2 * v1 - v2 - v6,
            v2 - v3,
            v3 - v4 - vk,
            v2 - v4 - v6,
            -2 * v1 + 2 * v3 - c["k5"] * s6,
            c["psi"] * vk - c["k"] * s7,
        )
