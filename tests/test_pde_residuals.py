"""Torch residuals of the PDE families on exact solutions (float64).

Derivatives of the closed-form solutions are taken by torch autograd, which is
exact up to round-off. Each residual must be <= 1e-10 times the scale of the
largest term on the exact solution, and >= 1e-3 when one parameter is moved by 10%.
"""

from __future__ import annotations

import math

import pytest
import torch

from scimeta import problems

F64 = torch.float64


def _heat(t, x, p):
    (d,) = p
    return torch.exp(-d * (2 * math.pi) ** 2 * t) * torch.sin(2 * math.pi * x + 0.3)


def _advection(t, x, p):
    (beta,) = p
    z = x - beta * t
    return torch.sin(2 * math.pi * z) + 0.5 * torch.cos(4 * math.pi * z)


def _burgers(t, x, p):  # viscous shock u = c - a tanh(a (x - c t) / (2 nu))
    (nu,) = p
    a, c = 0.5, 0.2
    return c - a * torch.tanh(a * (x - c * t) / (2 * nu))


def _fisher(t, x, p):  # Ablowitz-Zeppetella wave
    nu, rho = p
    return (1 + torch.exp(math.sqrt(rho / (6 * nu)) * x - 5 * rho * t / 6)) ** -2


def _allen_front(t, x, p):  # steady front: tests eps
    eps, _ = p
    return torch.tanh(x / (math.sqrt(2) * eps)) + 0 * t


def _allen_uniform(t, x, p):  # spatially uniform relaxation u' = lam (u - u^3): tests lam
    _, lam = p
    u0 = 0.3
    return (1 + (1 / u0**2 - 1) * torch.exp(-2 * lam * t)) ** -0.5 + 0 * x


def _kdv(t, x, p):  # soliton of speed c = 1.3
    (delta,) = p
    c = 1.3
    return 3 * c / torch.cosh(math.sqrt(c) * (x - 0.2 - c * t) / (2 * delta)) ** 2


CASES = [
    ("heat", _heat, (0.01,), 0),
    ("advection", _advection, (0.7,), 0),
    ("burgers", _burgers, (0.05,), 0),
    ("fisher_kpp", _fisher, (2.0, 3.0), 0),
    ("fisher_kpp", _fisher, (2.0, 3.0), 1),
    ("allen_cahn", _allen_front, (0.05, 2.0), 0),
    ("allen_cahn", _allen_uniform, (0.05, 2.0), 1),
    ("kdv", _kdv, (0.05,), 0),
]


def _derivs(fn, p, orders):
    t = torch.linspace(0.0, 0.5, 7, dtype=F64).repeat_interleave(41).requires_grad_(True)
    x = torch.linspace(-0.6, 0.6, 41, dtype=F64).repeat(7).requires_grad_(True)
    u = fn(t, x, p)
    (u_t,) = torch.autograd.grad(u.sum(), t, create_graph=True)
    out, d = {}, u
    for order in range(1, max(orders, default=0) + 1):
        if d.requires_grad:
            (d,) = torch.autograd.grad(d.sum(), x, create_graph=True)
        else:  # the previous derivative did not depend on x
            d = torch.zeros_like(x)
        out["d_" + "x" * order] = d.detach()[:, None]
    return t.detach(), x.detach(), u.detach()[:, None], u_t.detach()[:, None], out


@pytest.mark.parametrize(("name", "fn", "p", "which"), CASES)
def test_residual_zero_on_exact_solution_and_sensitive(name, fn, p, which):
    fam = problems.get(name)
    orders = [len(s) for s in fam.spatial_derivatives]
    t, x, u, u_t, derivs = _derivs(fn, p, orders)
    derivs = {k: v for k, v in derivs.items() if k[2:] in fam.spatial_derivatives}
    assert set(derivs) == {f"d_{s}" for s in fam.spatial_derivatives}
    params = torch.tensor(p, dtype=F64).expand(len(t), len(p))
    space = x[:, None]
    res = fam.residual(t, u, u_t, params, space=space, **derivs)
    assert res.shape == u.shape
    scale = max(float(v.abs().max()) for v in (u_t, *derivs.values(), u))
    assert float(res.abs().max()) <= 1e-10 * scale
    moved = params.clone()
    moved[:, which] *= 1.1
    res_moved = fam.residual(t, u, u_t, moved, space=space, **derivs)
    assert float(res_moved.abs().max()) >= 1e-3


def test_residual_is_differentiable():
    fam = problems.get("burgers")
    y = torch.rand(5, 1, dtype=F64, requires_grad=True)
    params = torch.full((5, 1), 0.1, dtype=F64, requires_grad=True)
    res = fam.residual(torch.zeros(5), y, torch.zeros(5, 1), params, space=torch.zeros(5, 1),
                       d_x=torch.ones(5, 1), d_xx=torch.ones(5, 1))
    res.sum().backward()
    assert params.grad is not None and y.grad is not None
