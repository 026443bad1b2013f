"""Tests of the Duffing family: the scimeta contract, an exact balance law, discovery."""

from __future__ import annotations

from importlib.metadata import entry_points

import numpy as np
import pytest
from scimeta_duffing import Duffing
from scipy.integrate import cumulative_simpson

from scimeta.testing import assert_family_contract


def test_duffing_passes_the_scimeta_contract():
    # disjoint regimes, solver tolerance and self-convergence, residual, HDF5 round trip
    assert_family_contract(Duffing)


@pytest.mark.parametrize("params", [
    (0.3, 1.0, 0.5, 0.4, 1.2),   # train
    (0.1, 0.5, 1.9, 0.5, 0.8),   # test-extrapolate
    (0.0, 1.0, 1.0, 0.0, 1.0),   # undamped, unforced: energy conserved
])
def test_energy_balance(params):
    """E(t) - E(0) = int_0^t (gamma cos(omega s) v - delta v^2) ds on t in [0, 20], the
    power integrated by cumulative Simpson on 20001 points: tolerance 1e-7 (measured
    <= 6e-10)."""
    fam = Duffing()
    p = np.array(params)
    delta, _, _, gamma, omega = params
    t = np.linspace(0.0, 20.0, 20001)
    y = fam.solve(p, np.array([0.8, -0.3]), t)
    power = gamma * np.cos(omega * t) * y[:, 1] - delta * y[:, 1] ** 2
    work = cumulative_simpson(power, x=t, initial=0.0)
    energy = fam.energy(p, y)
    assert np.abs(energy - energy[0] - work).max() <= 1e-7


def test_scimeta_finds_the_installed_family():
    if not any(ep.name == "duffing" for ep in entry_points(group="scimeta.problems")):
        pytest.skip("scimeta-duffing is not installed (pip install -e .)")
    from scimeta import registry

    assert "duffing" in registry.names()
    assert isinstance(registry.get("duffing"), Duffing)
