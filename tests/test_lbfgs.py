"""Batched L-BFGS test-time adaptation: the two-loop identity, exact minimisers, the
line search, per-task independence and its use through ``adapt_curve``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from scimeta.meta import MAML, TaskBatch
from scimeta.train._lbfgs import ARMIJO, BatchedLBFGS, two_loop
from scimeta.train.adaptation import adapt_curve
from scimeta.train.eval_inits import check_eval_optimizer

D = torch.float64


def _run(f_and_g, x0: torch.Tensor, rate: torch.Tensor, steps: int):
    """Drive BatchedLBFGS for ``steps`` evaluations; loss of the accepted point per step."""
    opt = BatchedLBFGS({"x": x0}, rate)
    fast, history = {"x": x0}, []
    for k in range(steps + 1):
        f, g = f_and_g(fast["x"])
        fast, _, loss = opt.accept(fast, {"x": g}, f)
        history.append(loss.clone())
        if k < steps:
            fast = opt.propose()
    return fast["x"], torch.stack(history)


def _rosenbrock(x: torch.Tensor):
    a, b = x[:, 0], x[:, 1]
    f = (1 - a) ** 2 + 100 * (b - a * a) ** 2
    g = torch.stack([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)], dim=1)
    return f, g


def test_two_loop_satisfies_the_secant_equation_of_the_newest_pair():
    """L-BFGS's H maps the newest y to the newest s exactly (whatever H₀ and the older
    pairs); an absent pair (rho = 0) is a no-op."""
    gen = torch.Generator().manual_seed(0)
    b, p, m = 4, 6, 5
    a = torch.randn(b, p, p, generator=gen, dtype=D)
    spd = a @ a.transpose(1, 2) + p * torch.eye(p, dtype=D)
    s = [torch.randn(b, p, generator=gen, dtype=D) for _ in range(m)]
    y = [torch.einsum("bij,bj->bi", spd, si) for si in s]
    rho = [1 / (si * yi).sum(-1) for si, yi in zip(s, y, strict=True)]
    gamma = torch.rand(b, generator=gen, dtype=D) + 0.5
    torch.testing.assert_close(two_loop(y[-1], s, y, rho, gamma), s[-1], rtol=1e-12,
                               atol=1e-12)
    zero = [torch.zeros(b, p, dtype=D)]
    g = torch.randn(b, p, generator=gen, dtype=D)
    torch.testing.assert_close(
        two_loop(g, s + zero, y + zero, [*rho, torch.zeros(b, dtype=D)], gamma),
        two_loop(g, s, y, rho, gamma), rtol=0, atol=0)


def test_quadratics_reach_their_exact_minimisers_and_the_loss_never_grows():
    gen = torch.Generator().manual_seed(1)
    b, p = 5, 8
    a = torch.randn(b, p, p, generator=gen, dtype=D)
    hess = a @ a.transpose(1, 2) / p + 0.1 * torch.eye(p, dtype=D)  # condition ~ 100
    xstar = torch.randn(b, p, generator=gen, dtype=D)

    def fg(x):
        r = x - xstar
        hr = torch.einsum("bij,bj->bi", hess, r)
        return 0.5 * (r * hr).sum(-1), hr

    x, losses = _run(fg, torch.zeros(b, p, dtype=D), torch.ones(b, dtype=D), 60)
    torch.testing.assert_close(x, xstar, rtol=0, atol=1e-8)
    assert bool((losses[1:] <= losses[:-1]).all())


def test_rosenbrock_from_several_starts_converges_to_one_one():
    x0 = torch.tensor([[-1.2, 1.0], [0.0, 0.0], [2.0, 2.0], [-0.5, 1.5]], dtype=D)
    x, losses = _run(_rosenbrock, x0, torch.ones(4, dtype=D), 150)
    torch.testing.assert_close(x, torch.ones_like(x), rtol=0, atol=1e-6)
    assert bool((losses[1:] <= losses[:-1]).all())


def test_tasks_are_independent_of_their_batch_neighbours():
    """A task's trajectory is the same alone as beside tasks that backtrack, diverge
    (a non-finite candidate) or converge at other speeds."""
    x0 = torch.tensor([[-1.2, 1.0], [3.0, -3.0], [0.9, 0.8]], dtype=D)
    rate = torch.tensor([1.0, 5.0, 0.3], dtype=D)

    def fg(x):
        f, g = _rosenbrock(x)
        blow = x[:, 0].abs() > 50  # a region where the loss is not finite
        return torch.where(blow, torch.nan, f), g

    together, hist = _run(fg, x0, rate, 40)
    for i in range(3):
        alone, h = _run(fg, x0[i:i + 1], rate[i:i + 1], 40)
        torch.testing.assert_close(together[i:i + 1], alone, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(hist[:, i:i + 1], h, rtol=1e-12, atol=1e-12)
    assert bool(torch.isfinite(hist).all())


def test_first_step_is_torch_lbfgs_first_step_and_armijo_rejects_overshoot():
    """No history: d = −min(1, 1/‖g‖₁) g. A trial step that overshoots the minimum of
    f = x² badly is rejected (the point stays) and α shrinks into [α/10, α/2]."""
    x0 = torch.tensor([[0.25], [3.0]], dtype=D)
    opt = BatchedLBFGS({"x": x0}, torch.tensor([1.0, 1.0], dtype=D))
    opt.accept({"x": x0}, {"x": 2 * x0}, (x0 ** 2).sum(-1))
    cand = opt.propose()["x"]
    g1 = 2 * x0
    expected = x0 - torch.clamp(1 / g1.abs(), max=1.0) * g1
    torch.testing.assert_close(cand, expected, rtol=0, atol=1e-15)
    # task 0 steps x = 0.25 -> -0.25 (f equal: Armijo fails); task 1 3 -> 2 (accepted)
    f = (cand ** 2).sum(-1)
    kept, _, loss = opt.accept({"x": cand}, {"x": 2 * cand}, f)
    assert kept["x"][0].item() == 0.25 and kept["x"][1].item() == 2.0
    assert 0.1 <= opt.alpha[0].item() <= 0.5 and opt.alpha[1].item() == 1.0
    assert loss[0].item() == 0.0625 and ARMIJO < 1


def test_adapt_curve_lbfgs_solves_least_squares_of_a_linear_model():
    """A linear model's support loss is quadratic: L-BFGS reaches the least-squares fit
    (numpy's lstsq) and the query MSE at it; data-only and ``+physics`` names parse."""
    rng = np.random.default_rng(4)
    b, k = 6, 12
    sx = rng.standard_normal((b, k, 3))
    w = rng.standard_normal((b, 1, 3))
    sy = (sx * w).sum(-1, keepdims=True) + 0.3 + 0.1 * rng.standard_normal((b, k, 1))
    qx = rng.standard_normal((b, 20, 3))
    qy = (qx * w).sum(-1, keepdims=True) + 0.3
    batch = TaskBatch(*(torch.tensor(v, dtype=D) for v in (sx, sy, qx, qy)))
    model = nn.Linear(3, 1).to(D)
    learner = MAML(model, inner_lr=0.01, inner_steps=1)
    curve = adapt_curve(learner, learner.init_params(), batch, "lbfgs", 1.0, (0, 40),
                        keep_params=True)
    assert curve.params is not None
    for t in range(b):
        design = np.concatenate([sx[t], np.ones((k, 1))], axis=1)
        coef = np.linalg.lstsq(design, sy[t], rcond=None)[0][:, 0]
        got = np.concatenate([curve.params["weight"][t, 0].numpy(),
                              curve.params["bias"][t].numpy()])
        np.testing.assert_allclose(got, coef, rtol=0, atol=1e-7)
        pred = np.concatenate([qx[t], np.ones((20, 1))], axis=1) @ coef
        mse = np.mean((pred - qy[t, :, 0]) ** 2)
        assert curve.query_mse[1, t].item() == pytest.approx(mse, rel=1e-6)
    assert not bool(curve.diverged.any())
    assert check_eval_optimizer("lbfgs+physics") == "lbfgs+physics"
