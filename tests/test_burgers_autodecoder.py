"""The Burgers decoder probe's exact pieces (bench/burgers_autodecoder.py): the
initial-state code is the family's own basis read off u(0, x) exactly, the residual
vanishes on the closed-form travelling wave of viscous Burgers, and the scaling
symmetry the ``--symmetry`` decoder is built on holds for the family's solver and is
exact in the decoder."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from scimeta import problems
from scimeta.family import STATUS_OK

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
try:
    from burgers_autodecoder import BASIS, Decoder, basis_codes, residual_loss
    from burgers_reynolds import reynolds
finally:
    sys.path.remove(str(ROOT / "bench"))


class _Reader:
    """What basis_codes reads of a TaskReader: meta.space, len and fields(i)."""

    def __init__(self, x: np.ndarray, fields: list[np.ndarray],
                 params: np.ndarray | None = None) -> None:
        self.meta = SimpleNamespace(space=(x,))
        self._fields = fields
        self.params = params

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


def test_the_family_solver_obeys_the_scaling_symmetry():
    # if u solves u_t + u u_x = nu u_xx from u0, then a u(a t, x) solves it at a nu from a u0
    fam = problems.get("burgers")
    u0 = fam.initial_state(None, np.random.default_rng(4))
    t = np.linspace(0.0, 1.0, 11)
    a, nu = 0.4, 0.05
    u, status_u = fam.solve_batch(np.array([[nu]]), u0[None], a * t)
    v, status_v = fam.solve_batch(np.array([[a * nu]]), a * u0[None], t)
    assert (status_u == STATUS_OK).all() and (status_v == STATUS_OK).all()
    np.testing.assert_allclose(v, a * u, atol=1e-7 * np.abs(u).max())
    # and it is not a trivial identity: the same a without scaling the viscosity differs
    w, _ = fam.solve_batch(np.array([[nu]]), a * u0[None], t)
    assert np.abs(w - a * u).max() > 1e-2 * np.abs(u).max()


class _WaveDecoder(Decoder):
    """The symmetric decoder with its reduced part replaced by an exact solution at
    the reference viscosity: the travelling wave c - A tanh(A (x - c t) / (2 nu_ref))."""

    def reduced(self, t, x, z, nu):
        c, amp = z[:, :1], z[:, 1:2]
        return c - amp * torch.tanh(amp * (x - c * t) / (2 * self.nu_ref))


def test_symmetric_decoder_solves_burgers_at_every_viscosity_when_its_core_does():
    dec = _WaveDecoder(2 * BASIS, 8, True, (0.02, 0.2), symmetry=True).double()
    g = torch.Generator().manual_seed(1)
    tc = torch.rand(3, 64, generator=g, dtype=torch.float64)
    xc = torch.rand(3, 64, generator=g, dtype=torch.float64) * 2 - 1
    z = torch.zeros(3, 2 * BASIS, dtype=torch.float64)
    z[:, 0], z[:, 1] = 0.3, 0.8
    nu = torch.tensor([0.012, 0.05, 0.3], dtype=torch.float64)  # inside and outside the box
    assert residual_loss(dec, tc, xc, z, nu, 1.0, 1.0) < 1e-24
    # the unscaled core would not: the wave at nu_ref is not a solution at these nu
    plain = _WaveDecoder(2 * BASIS, 8, True, (0.02, 0.2), symmetry=False).double()
    assert residual_loss(plain, tc, xc, z, nu, 1.0, 1.0) > 1e-3


def test_symmetric_decoder_is_equivariant():
    torch.manual_seed(0)
    dec = Decoder(2 * BASIS, 16, True, (0.02, 0.2), symmetry=True).double()
    g = torch.Generator().manual_seed(2)
    t = torch.rand(2, 32, generator=g, dtype=torch.float64)
    x = torch.rand(2, 32, generator=g, dtype=torch.float64) * 2 - 1
    z = torch.randn(2, 2 * BASIS, generator=g, dtype=torch.float64)
    nu, a = torch.tensor([0.03, 0.1], dtype=torch.float64), 0.37
    lhs = dec(t, x, a * z, a * nu)
    rhs = a * dec(a * t, x, z, nu)
    torch.testing.assert_close(lhs, rhs, rtol=1e-12, atol=1e-14)
    assert not torch.allclose(dec(t, x, a * z, nu), rhs)  # needs the viscosity scaled too


def test_reynolds_number_is_the_largest_initial_speed_over_the_viscosity():
    x = np.linspace(-1, 1, 64, endpoint=False)
    u0 = [0.5 * np.sin(np.pi * x), -1.5 * np.cos(2 * np.pi * x)]
    reader = _Reader(x, [np.stack([u, 0 * u])[..., None] for u in u0],
                     params=np.array([[0.05], [0.02]]))
    np.testing.assert_allclose(reynolds(reader), [0.5 / 0.05, 1.5 / 0.02], rtol=1e-12)
