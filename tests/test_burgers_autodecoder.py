"""The Burgers decoder probe's exact pieces (bench/burgers_autodecoder.py): the
initial-state code is the family's own basis read off u(0, x) exactly, and the residual
vanishes on the closed-form travelling wave of viscous Burgers."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from scimeta import problems

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
try:
    from burgers_autodecoder import BASIS, basis_codes, residual_loss
finally:
    sys.path.remove(str(ROOT / "bench"))


class _Reader:
    """What basis_codes reads of a TaskReader: meta.space, len and fields(i)."""

    def __init__(self, x: np.ndarray, fields: list[np.ndarray]) -> None:
        self.meta = SimpleNamespace(space=(x,))
        self._fields = fields

    def __len__(self) -> int:
        return len(self._fields)

    def fields(self, i: int) -> np.ndarray:
        return self._fields[i]


def test_basis_code_reconstructs_the_family_initial_states_exactly():
    fam = problems.get("burgers")
    x = np.asarray(fam.space["x"])
    rng = np.random.default_rng(3)
    u0 = [fam.initial_state(None, rng)[:, 0] for _ in range(5)]
    reader = _Reader(x, [np.stack([u, 0 * u])[..., None] for u in u0])  # [t = 2, x, 1]
    scale = 2.0
    codes = basis_codes(reader, scale).double().numpy()
    assert codes.shape == (5, 2 * BASIS)
    k = np.arange(1, BASIS + 1)[:, None] * np.pi * x[None]
    rebuilt = scale * (codes[:, :BASIS] @ np.sin(k) + codes[:, BASIS:] @ np.cos(k))
    # float32 codes: exact up to single-precision round-off of O(1) coefficients
    np.testing.assert_allclose(rebuilt, np.stack(u0), atol=1e-6)
    assert np.abs(np.stack(u0)).max() > 0.1  # the draws are not trivially zero


def test_residual_vanishes_on_the_travelling_wave_and_not_at_another_viscosity():
    # u = c - A tanh(A (x - c t) / (2 nu)) solves u_t + u u_x = nu u_xx exactly
    c, amp = 0.3, 0.8

    def wave(t, x, z, nu):
        return c - amp * torch.tanh(amp * (x - c * t) / (2 * nu[:, None]))

    g = torch.Generator().manual_seed(0)
    tc = torch.rand(2, 64, generator=g, dtype=torch.float64)
    xc = torch.rand(2, 64, generator=g, dtype=torch.float64) * 2 - 1
    z = torch.zeros(2, 2 * BASIS, dtype=torch.float64)
    nu = torch.tensor([0.05, 0.1], dtype=torch.float64)
    assert residual_loss(wave, tc, xc, z, nu, 1.0, 1.0) < 1e-24

    def wrong(t, x, z, nu):
        return wave(t, x, z, 2 * nu)

    assert residual_loss(wrong, tc, xc, z, nu, 1.0, 1.0) > 1e-3
