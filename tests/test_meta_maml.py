"""MAML core: exactness of the meta-gradient (float64), batching, physics losses, errors.

Tolerances: finite differences (central, h = 1e-6) agree to relative 1e-6; closed
forms on quadratic tasks to 1e-10; batched vs looped / chunked vs unchunked /
fast vs generic paths to 1e-12 (round-off only).
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import pytest
import torch
from torch import nn

from scimeta import problems
from scimeta.errors import ConfigError
from scimeta.family import ProblemFamily, SolverInfo
from scimeta.meta import MAML, PhysicsLoss, TaskBatch
from scimeta.meta._physics import parse_derivative
from scimeta.nn import CoordinateMLP
from scimeta.params import ParamSpec, TimeGrid

DT = torch.float64
# torch's own forward-mode decompositions call the deprecated torch.jit.script once
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")


def flat_grad(loss_fn, params):
    loss = loss_fn(params)
    grads = torch.autograd.grad(loss, list(params.values()))
    return torch.cat([g.reshape(-1) for g in grads])


def fd_grad(loss_fn, params, h=1e-6):
    """Central differences of ``loss_fn`` over every parameter entry."""
    base = {k: v.detach().clone() for k, v in params.items()}
    out = []
    with torch.no_grad():
        for k, v in base.items():
            for i in range(v.numel()):
                vals = []
                for s in (h, -h):
                    w = v.clone()
                    w.view(-1)[i] += s
                    vals.append(loss_fn({**base, k: w}))
                out.append((vals[0] - vals[1]) / (2 * h))
    return torch.stack(out)


def oscillator_batch(n_tasks=3, k=5, q=6, c=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = lambda n: 2.0 * torch.rand(n_tasks, n, 1, generator=g, dtype=DT)  # noqa: E731
    p = torch.rand(n_tasks, 4, generator=g, dtype=DT) * torch.tensor([2.0, 0.3, 1.0, 2.0],
                                                                      dtype=DT) + 0.2
    return TaskBatch(t(k), torch.randn(n_tasks, k, 2, generator=g, dtype=DT),
                     t(q), torch.randn(n_tasks, q, 2, generator=g, dtype=DT), t(c), p)


def tiny_mlp(seed=0, out_dim=2, hidden=(5, 5)):
    torch.manual_seed(seed)
    return CoordinateMLP(1, out_dim, hidden=hidden, activation="tanh").to(DT)


@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("where", [None, "inner", "both"])
def test_meta_gradient_matches_finite_differences(steps, where):
    physics = None if where is None else PhysicsLoss(problems.get("oscillator"), 0.5, where)
    maml = MAML(tiny_mlp(), inner_lr=0.1, inner_steps=steps, physics=physics)
    batch = oscillator_batch()
    params = maml.init_params()
    g = flat_grad(lambda p: maml.meta_loss(p, batch), params)
    g_fd = fd_grad(lambda p: maml.meta_loss(p, batch), params)
    assert (g - g_fd).norm() / g_fd.norm() <= 1e-6


# ---- quadratic tasks -------------------------------------------------------------
def quadratic_tasks(n_tasks=4, d=3, k=6, q=5, seed=1):
    """Linear model y = x·w on exact data: MSE = ½(w − w*)ᵀH(w − w*), H = 2XᵀX/K."""
    g = torch.Generator().manual_seed(seed)
    xs = torch.randn(n_tasks, k, d, generator=g, dtype=DT)
    xq = torch.randn(n_tasks, q, d, generator=g, dtype=DT)
    w_star = torch.randn(n_tasks, d, generator=g, dtype=DT)
    batch = TaskBatch(xs, (xs @ w_star[..., None]), xq, (xq @ w_star[..., None]))
    hs = 2 * xs.mT @ xs / k
    hq = 2 * xq.mT @ xq / q
    return batch, w_star, hs, hq


def quadratic_closed_form(w, w_star, hs, hq, alpha, steps):
    """(exact meta-gradient, first-order gradient): means over tasks."""
    eye = torch.eye(w.shape[0], dtype=DT)
    exact, first = [], []
    for ws, h_s, h_q in zip(w_star, hs, hq, strict=True):
        a_k = torch.linalg.matrix_power(eye - alpha * h_s, steps)
        phi = ws + a_k @ (w - ws)
        query_grad = h_q @ (phi - ws)
        exact.append(a_k @ query_grad)
        first.append(query_grad)
    return torch.stack(exact).mean(0), torch.stack(first).mean(0)


@pytest.mark.parametrize("steps", [1, 4])
@pytest.mark.parametrize("sequential", [False, True])
def test_quadratic_closed_form(steps, sequential):
    batch, w_star, hs, hq = quadratic_tasks()
    torch.manual_seed(0)
    lin = nn.Linear(3, 1, bias=False).to(DT)
    model = nn.Sequential(lin) if sequential else lin
    alpha = 0.1
    exact_cf, first_cf = quadratic_closed_form(lin.weight.detach()[0], w_star, hs, hq,
                                               alpha, steps)
    grads = {}
    for fo in (False, True):
        maml = MAML(model, inner_lr=alpha, inner_steps=steps, first_order=fo)
        assert (maml._fast is not None) == sequential
        params = maml.init_params()
        (g,) = torch.autograd.grad(maml.meta_loss(params, batch), list(params.values()))
        grads[fo] = g[0]
    assert torch.allclose(grads[False], exact_cf, rtol=0, atol=1e-10)
    assert torch.allclose(grads[True], first_cf, rtol=0, atol=1e-10)
    # first-order minus exact is the Hessian term mean_i (I - (I - αH_i)^K) ∇L_q(φ_i)
    assert torch.allclose(grads[True] - grads[False], first_cf - exact_cf, atol=1e-10)
    if steps == 1:  # the (I − αH)·∇L_query(φ) form, H the support Hessian
        eye = torch.eye(3, dtype=DT)
        w = lin.weight.detach()[0]
        terms = []
        for ws, h_s, h_q in zip(w_star, hs, hq, strict=True):
            phi = w - alpha * h_s @ (w - ws)
            terms.append((eye - alpha * h_s) @ (h_q @ (phi - ws)))
        assert torch.allclose(grads[False], torch.stack(terms).mean(0), atol=1e-10)


def test_quadratic_hessian_term_is_nonzero():
    _batch, w_star, hs, hq = quadratic_tasks()
    exact, first = quadratic_closed_form(torch.zeros(3, dtype=DT), w_star, hs, hq, 0.1, 2)
    assert (exact - first).norm() > 1e-3  # the test above is not vacuous


# ---- batching ------------------------------------------------------------------
@pytest.mark.parametrize("fast", [False, None])
def test_vmap_equals_python_loop_and_chunks(fast):
    maml = MAML(tiny_mlp(), inner_lr=0.05, inner_steps=2, fast=fast)
    batch = oscillator_batch(n_tasks=5)
    params = maml.init_params()
    loss = maml.meta_loss(params, batch)
    g = torch.autograd.grad(loss, list(params.values()))
    per_task = [maml.meta_loss(params, TaskBatch(*(t[i:i + 1] for t in batch)))
                for i in range(5)]
    loop_loss = torch.stack(per_task).mean()
    g_loop = torch.autograd.grad(loop_loss, list(params.values()))
    assert torch.allclose(loss, loop_loss, rtol=1e-12, atol=0)
    for a, b in zip(g, g_loop, strict=True):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)
    chunked = MAML(maml.model, inner_lr=0.05, inner_steps=2, chunk_size=2, fast=fast)
    loss_c = chunked.meta_loss(params, batch)
    g_c = torch.autograd.grad(loss_c, list(params.values()))
    assert torch.allclose(loss, loss_c, rtol=1e-12, atol=0)
    for a, b in zip(g, g_c, strict=True):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)


def test_adapt_batch_equals_adapt_per_task():
    maml = MAML(tiny_mlp(), inner_lr=0.05, inner_steps=3)
    batch = oscillator_batch(n_tasks=4)
    params = maml.init_params()
    phis = maml.adapt_batch(params, batch)
    for i in range(4):
        phi = maml.adapt(params, batch.support_x[i], batch.support_y[i])
        for n in phi:
            assert torch.allclose(phis[n][i], phi[n], rtol=1e-12, atol=1e-14)
    pred = maml.predict(phis, batch.query_x)
    assert pred.shape == batch.query_y.shape
    assert torch.allclose(pred[1], maml.predict({n: v[1] for n, v in phis.items()},
                                                batch.query_x[1]), atol=1e-14)
    curve = maml.adaptation_curve(params, batch)
    assert curve.shape == (4, 4) and not curve.requires_grad
    assert torch.allclose(curve[-1], torch.stack([
        ((maml.predict({n: v[i] for n, v in phis.items()}, batch.query_x[i])
          - batch.query_y[i]) ** 2).mean() for i in range(4)]), atol=1e-12)


@pytest.mark.parametrize("act", ["tanh", "relu", "silu", "sine"])
@pytest.mark.parametrize("first_order", [False, True])
def test_fast_path_equals_generic(act, first_order):
    torch.manual_seed(3)
    model = CoordinateMLP(1, 2, hidden=(6, 7), activation=act, omega0=2.0).to(DT)
    batch = oscillator_batch(n_tasks=4)
    out = []
    for fast in (False, True):
        maml = MAML(model, inner_lr=0.05, inner_steps=3, first_order=first_order, fast=fast)
        params = maml.init_params()
        loss = maml.meta_loss(params, batch)
        out.append((loss, torch.autograd.grad(loss, list(params.values()))))
    assert torch.allclose(out[0][0], out[1][0], rtol=1e-12, atol=0)
    for a, b in zip(out[0][1], out[1][1], strict=True):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("fast", [False, None])
def test_meta_loss_under_torch_func_grad(fast):
    maml = MAML(tiny_mlp(), inner_lr=0.05, inner_steps=2, fast=fast)
    batch = oscillator_batch()
    params = maml.init_params()
    g1 = torch.autograd.grad(maml.meta_loss(params, batch), list(params.values()))
    g2 = torch.func.grad(maml.meta_loss)({k: v.detach() for k, v in params.items()}, batch)
    for a, b in zip(g1, g2.values(), strict=True):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)


# ---- physics -------------------------------------------------------------------
class _ExactOscillator(nn.Module):
    """x = A cos(a t) + B sin(a t), v = x' — solves the unforced, undamped oscillator."""

    def __init__(self, a: float) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a, dtype=DT))
        self.c = nn.Parameter(torch.tensor([0.3, -0.7], dtype=DT))

    def forward(self, t):
        at = self.a * t
        x = self.c[0] * torch.cos(at) + self.c[1] * torch.sin(at)
        v = self.a * (-self.c[0] * torch.sin(at) + self.c[1] * torch.cos(at))
        return torch.cat([x, v], dim=-1)


def test_oscillator_residual_vanishes_on_exact_solution():
    phys = PhysicsLoss("oscillator", weight=1.0)
    model = _ExactOscillator(1.7)
    params = {k: v.detach() for k, v in model.named_parameters()}
    t = torch.linspace(0, 5, 11, dtype=DT)[:, None]
    p = torch.tensor([1.7, 0.0, 0.0, 1.0], dtype=DT)
    assert phys.residual(model, params, t, p).abs().max() < 1e-12
    r = phys.residual(model, params, t, torch.tensor([2.0, 0.0, 0.0, 1.0], dtype=DT))
    assert r[:, 1].abs().max() > 0.1  # a wrong ω0 leaves a residual


class _FakeHeat2D(ProblemFamily):
    """u_t = D u_xx on (x, y); records the derivative keywords it receives."""

    name = "fake-heat-2d"
    equation = "u_t = D u_xx"
    params = (ParamSpec("D", "1", (0.0, math.inf)),)
    state_names = ("u",)
    time = TimeGrid(0.0, 1.0, 3)
    regimes: ClassVar[dict] = {}
    solver = SolverInfo("none", "none")
    spatial_derivatives = ("x", "xx", "xxx", "xxxx", "y", "xy")

    @property
    def space(self):
        return {"x": np.linspace(0, 1, 4), "y": np.linspace(0, 1, 4)}

    def sample_initial_state(self, rng, regime=None):
        raise NotImplementedError

    def solve_batch(self, params, y0, t):
        raise NotImplementedError

    def residual(self, t, y, dydt, params, **kw):
        self.seen = kw
        return dydt - params[..., :1] * kw["d_xx"]


class _HeatMode(nn.Module):
    """u = exp(-D t) sin(x) cos(y): an exact solution of u_t = D u_xx."""

    def __init__(self, d: float) -> None:
        super().__init__()
        self.d = nn.Parameter(torch.tensor(d, dtype=DT))

    def forward(self, z):
        t, x, y = z.unbind(-1)
        return (torch.exp(-self.d * t) * torch.sin(x) * torch.cos(y)).unsqueeze(-1)


def test_pde_spatial_derivatives_are_exact():
    fam = _FakeHeat2D()
    phys = PhysicsLoss(fam, weight=1.0, where="both")
    assert phys.derivatives == {"x": (1,), "xx": (1, 1), "xxx": (1, 1, 1),
                                "xxxx": (1, 1, 1, 1), "y": (2,), "xy": (1, 2)}
    model = _HeatMode(0.3)
    params = {k: v.detach() for k, v in model.named_parameters()}
    z = torch.rand(9, 3, generator=torch.Generator().manual_seed(0), dtype=DT)
    r = phys.residual(model, params, z, torch.tensor([0.3], dtype=DT))
    assert r.shape == (9, 1) and r.abs().max() < 1e-14
    t, x, y = z.unbind(-1)
    e = torch.exp(-0.3 * t)
    expect = {"x": e * x.cos() * y.cos(), "xx": -e * x.sin() * y.cos(),
              "xxx": -e * x.cos() * y.cos(), "xxxx": e * x.sin() * y.cos(),
              "y": -e * x.sin() * y.sin(), "xy": -e * x.cos() * y.sin()}
    for name, val in expect.items():
        assert torch.allclose(fam.seen[f"d_{name}"][:, 0], val, atol=1e-13), name
    assert torch.equal(fam.seen["space"], z[:, 1:])
    with pytest.raises(ConfigError, match="not a sequence"):
        parse_derivative("xz", ("t", "x", "y"))


# ---- bad input -----------------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "name"), [
    ({"inner_lr": 0.0}, "inner_lr"), ({"inner_lr": -1e-3}, "inner_lr"),
    ({"inner_steps": -1}, "inner_steps"), ({"chunk_size": 0}, "chunk_size"),
    ({"loss": "mae"}, "loss"), ({"first_order": 1}, "first_order"),
])
def test_bad_arguments(kwargs, name):
    with pytest.raises(ConfigError, match=name):
        MAML(tiny_mlp(), **kwargs)


def test_bad_data():
    maml = MAML(tiny_mlp(), inner_lr=0.1, inner_steps=1)
    params = maml.init_params()
    b = oscillator_batch()
    wide = TaskBatch(torch.cat([b.support_x, b.support_x], -1), b.support_y,
                     torch.cat([b.query_x, b.query_x], -1), b.query_y)
    with pytest.raises(ConfigError, match="d_in=2"):
        maml.meta_loss(params, wide)
    with pytest.raises(ConfigError, match="support_y"):
        maml.meta_loss(params, b._replace(support_y=b.support_y[..., :1],
                                          query_y=b.query_y[..., :1]))
    with pytest.raises(ConfigError, match=r"batch\.support_x"):
        maml.meta_loss(params, b._replace(support_x=b.support_x[0]))
    with pytest.raises(ConfigError, match="query_x"):
        maml.meta_loss(params, b._replace(query_x=b.query_x[:2]))
    with pytest.raises(ConfigError, match="support_x"):
        maml.adapt(params, b.support_x, b.support_y)
    with pytest.raises(ConfigError, match="steps"):
        maml.adapt(params, b.support_x[0], b.support_y[0], steps=-2)
    with pytest.raises(ConfigError, match="lacks"):
        maml.meta_loss({}, b)
    phys = MAML(tiny_mlp(), physics=PhysicsLoss("oscillator"))
    with pytest.raises(ConfigError, match="collocation_x"):
        phys.meta_loss(phys.init_params(), b[:4])
    with pytest.raises(ConfigError, match="where"):
        PhysicsLoss("oscillator", where="middle")
    with pytest.raises(ConfigError, match="weight"):
        PhysicsLoss("oscillator", weight=-1.0)
    three = MAML(tiny_mlp(out_dim=3), physics=PhysicsLoss("oscillator"))
    with pytest.raises(ConfigError, match="channels"):
        three.meta_loss(three.init_params(), b._replace(support_y=b.support_y[..., [0, 1, 1]],
                                                        query_y=b.query_y[..., [0, 1, 1]]))
