"""Shared fixtures: small test-only families and generated stores."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from scimeta import registry
from scimeta.data import GenerationConfig, generate
from scimeta.family import OdeFamily, SolverInfo
from scimeta.params import ParamSpec, Regime, TimeGrid


class Blowup(OdeFamily):
    """y' = a y², y(0) = 1: finite-time blow-up at t = 1/a, so a >= 1 fails on [0, 1.5]."""

    name = "test_blowup"
    equation = "y' = a*y**2"
    params = (ParamSpec("a", "1/s", (0.0, math.inf)),)
    state_names = ("y",)
    time = TimeGrid(0.0, 1.5, 16)
    regimes = {
        "train": Regime("train", box={"a": (0.0, 0.5)}),
        "mixed": Regime("mixed", points=((0.2,), (1.0,), (0.4,), (2.0,))),
    }
    solver = SolverInfo("scipy.integrate.solve_ivp", "DOP853", rtol=1e-10, atol=1e-10)
    initial_box = ((1.0, 1.0),)

    def rhs(self, t, y, p, xp):
        return (p[0] * y[0] ** 2,)


class Growth(Blowup):
    """y' = a y, y(0) = 1: y(1) = e^a overflows float32 (3.4e38) for a > 88.7."""

    name = "test_growth"
    equation = "y' = a*y"
    time = TimeGrid(0.0, 1.0, 5)
    regimes = {"mixed": Regime("mixed", points=((1.0,), (100.0,)))}

    def rhs(self, t, y, p, xp):
        return (p[0] * y[0],)


registry.register("test_blowup", Blowup)
registry.register("test_growth", Growth)


@pytest.fixture(scope="session")
def osc_store(tmp_path_factory) -> str:
    """40 oscillator tasks (train regime), K=10, Q=50."""
    out = tmp_path_factory.mktemp("stores") / "osc.h5"
    generate(GenerationConfig("oscillator", "train", tasks=40, seed=3, support=10, query=50),
             out)
    return str(out)


@pytest.fixture(scope="session")
def blowup_store(tmp_path_factory) -> str:
    """4 tasks of which two blow up (solver-failed)."""
    out = tmp_path_factory.mktemp("stores") / "blowup.h5"
    generate(GenerationConfig("test_blowup", "mixed", tasks=4, seed=0, support=3, query=4), out)
    return str(out)


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one intra-op thread avoids OpenMP contention on a loaded machine
    (use with ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
