"""scimeta.train.forecast: full-rollout MSE against a closed form, and per-environment
fine-tuning (stacked environments equal independent runs; the true field is found)."""

from __future__ import annotations

import logging
import math

import pytest
import torch
from torch import nn

from scimeta.errors import ConfigError
from scimeta.nn import Forecaster
from scimeta.train.forecast import fine_tune, fine_tune_validated, forecast_error, forecast_mse

T = torch.linspace(0.0, 2.0, 9, dtype=torch.float64)


def rotation(omega: float) -> torch.Tensor:
    return torch.tensor([[0.0, omega], [-omega, 0.0]], dtype=torch.float64)


def exact(omega: float, y0: torch.Tensor) -> torch.Tensor:
    """y' = A y, A = [[0, w], [-w, 0]]: y(t) = R(w t) y0; y0 [N, 2] -> [N, T, 2]."""
    c, s = torch.cos(omega * T), torch.sin(omega * T)
    x = c[None] * y0[:, :1] + s[None] * y0[:, 1:]
    y = -s[None] * y0[:, :1] + c[None] * y0[:, 1:]
    return torch.stack([x, y], dim=-1)


def linear_model(omega: float, substeps: int = 8) -> Forecaster:
    lin = nn.Linear(2, 2, bias=False).double()
    with torch.no_grad():
        lin.weight.copy_(rotation(omega))
    return Forecaster(lin, T, substeps=substeps)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny graphs: per-op overhead


def test_rollout_mse_matches_closed_form():
    """RK4 with h = 0.25/8 on the exact field: global error ~h^4 ~ 1e-7 (measured
    max abs 1.4e-9), so the MSE against the exact solution is ~0 and an offset c on
    every time gives mean(c^2)."""
    model = linear_model(1.3)
    y0 = torch.tensor([[[1.0, 0.0], [0.5, -2.0], [0.2, 0.3]]], dtype=torch.float64)
    traj = exact(1.3, y0[0])[None]                               # [1, 3, 9, 2]
    mse = forecast_mse(model, None, y0, traj)
    assert mse.shape == (1, 3) and mse.max() < 1e-14
    c = torch.tensor([0.1, -0.3], dtype=torch.float64)
    shifted = forecast_mse(model, None, y0, (traj + c).flatten(-2))  # flattened layout
    torch.testing.assert_close(shifted, torch.full((1, 3), 0.05, dtype=torch.float64),
                               rtol=1e-6, atol=0)
    # a wrong field: the error grows along the rollout (no teacher forcing)
    wrong = forecast_mse(model, {"field.weight": rotation(1.0)}, y0, traj)
    assert (wrong > 1e-3).all()


def test_forecast_error_per_time_matches_closed_form():
    """A field of rate w' instead of w rotates y0 by the wrong angle: the rollout's
    squared error at time t is |R(w't) y0 - R(w t) y0|^2 / 2 per state =
    |y0|^2 (1 - cos((w' - w) t)) (rotations keep the norm), 0 at t = 0; the mean over
    times is forecast_mse."""
    model = linear_model(1.3)
    y0 = torch.tensor([[[1.0, 0.0], [0.5, -2.0]], [[0.2, 0.3], [-1.0, 1.0]]],
                      dtype=torch.float64)                        # [E=2, N=2, 2]
    traj = torch.stack([exact(1.0, y0[0]), exact(1.0, y0[1])])     # [2, 2, 9, 2]
    err = forecast_error(model, None, y0, traj)
    assert err.shape == (2, 2, 9)
    want = y0.pow(2).sum(-1)[..., None] * (1 - torch.cos(0.3 * T))
    torch.testing.assert_close(err, want, rtol=1e-6, atol=1e-12)  # RK4 error ~1e-9
    assert err[..., 0].abs().max() == 0
    torch.testing.assert_close(forecast_mse(model, None, y0, traj), err.mean(-1),
                               rtol=1e-14, atol=0)

def test_fine_tune_stacked_equals_independent_and_finds_field():
    y0 = torch.tensor([[[1.0, 0.5]], [[-0.5, 1.0]]], dtype=torch.float64)   # [E=2, K=1, 2]
    traj = torch.stack([exact(1.2, y0[0]), exact(0.7, y0[1])])             # [2, 1, 9, 2]
    model = linear_model(1.0, substeps=2)
    phi, curve = fine_tune(model, None, y0, traj, steps=150, lr=0.02)
    assert curve.shape == (151, 2) and phi["field.weight"].shape == (2, 2, 2)
    assert (curve[-1] < 1e-3 * curve[0]).all()
    few, c_few = fine_tune(model, None, y0, traj, steps=20, lr=0.02)
    for e in range(2):
        one, c1 = fine_tune(model, None, y0[e:e + 1], traj[e:e + 1], steps=20, lr=0.02)
        torch.testing.assert_close(one["field.weight"][0], few["field.weight"][e],
                                   rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(c1[:, 0], c_few[:, e], rtol=1e-10, atol=1e-14)
    # the adapted fields are close to the true rotations; the model itself is untouched
    for e, w in enumerate((1.2, 0.7)):
        assert (phi["field.weight"][e] - rotation(w)).abs().max() < 0.05
    torch.testing.assert_close(model.field.weight.detach(), rotation(1.0))
    # evaluating with stacked parameters
    after = forecast_mse(model, phi, y0, traj)
    torch.testing.assert_close(after[:, 0], curve[-1], rtol=1e-10, atol=1e-14)


def test_shared_parameters_fit_all_environments_jointly():
    """shared=: one copy fitted to the summed loss (joint training); it stays unstacked."""
    y0 = torch.tensor([[[1.0, 0.5]], [[-0.5, 1.0]]], dtype=torch.float64)
    traj = torch.stack([exact(1.1, y0[0]), exact(1.1, y0[1])])
    model = linear_model(1.0, substeps=2)
    phi, curve = fine_tune(model, None, y0, traj, steps=100, lr=0.02, names=[],
                           shared=["field.weight"])
    assert phi["field.weight"].shape == (2, 2) and (curve[-1] < 1e-3 * curve[0]).all()
    assert (phi["field.weight"] - rotation(1.1)).abs().max() < 0.02
    with pytest.raises(ConfigError, match=r"names and shared both hold \['field.weight'\]"):
        fine_tune(model, None, y0, traj, steps=1, lr=0.1, shared=["field.weight"],
                  names=["field.weight"])
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) \['w'\].*field.weight"):
        fine_tune(model, None, y0, traj, steps=1, lr=0.1, names=["w"])
    with pytest.raises(ConfigError, match="nothing to train"):
        fine_tune(model, None, y0, traj, steps=1, lr=0.1, names=[])


def test_errors_name_the_argument():
    model = linear_model(1.0)
    y0 = torch.zeros(1, 2, 2, dtype=torch.float64)
    traj = torch.zeros(1, 2, 9, 2, dtype=torch.float64)
    with pytest.raises(ConfigError, match=r"optimizer='lbfgs'.*adam, sgd"):
        fine_tune(model, None, y0, traj, steps=1, lr=0.1, optimizer="lbfgs")
    with pytest.raises(ConfigError, match=r"steps=-1"):
        fine_tune(model, None, y0, traj, steps=-1, lr=0.1)
    with pytest.raises(ConfigError, match=r"lr=0"):
        fine_tune(model, None, y0, traj, steps=1, lr=0)
    with pytest.raises(ConfigError, match=r"target must be \[E, N, T, S\]"):
        forecast_mse(model, None, y0, traj[:, :, :5])
    with pytest.raises(ConfigError, match=r"y0 must be \[E, N, S\]"):
        forecast_mse(model, None, y0[0], traj)
    with pytest.raises(ConfigError, match="model=Linear"):
        forecast_mse(nn.Linear(2, 2), None, y0, traj)
    with pytest.raises(ConfigError, match="lacks the model parameter"):
        forecast_mse(model, {}, y0, traj)
    assert math.isfinite(float(forecast_mse(model, None, y0, traj).sum()))


def test_mini_batches_follow_their_draws():
    """batch=b: each update uses b trajectories per environment, drawn by randperm of
    a generator seeded with seed; one SGD step equals a full-batch step on the drawn
    trajectories; the last curve entry is on all K; batch=K is the full batch."""
    y0 = torch.randn(2, 3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    traj = torch.stack([exact(1.2, y0[0]), exact(0.7, y0[1])])             # [2, 3, 9, 2]
    model = linear_model(1.0, substeps=2)
    phi, curve = fine_tune(model, None, y0, traj, steps=1, lr=0.1, optimizer="sgd",
                           batch=1, seed=5)
    gen = torch.Generator().manual_seed(5)
    picks = [int(torch.randperm(3, generator=gen)[0]) for _ in range(2)]
    for e, i in enumerate(picks):
        one, c1 = fine_tune(model, None, y0[e:e + 1, i:i + 1], traj[e:e + 1, i:i + 1],
                            steps=1, lr=0.1, optimizer="sgd")
        torch.testing.assert_close(phi["field.weight"][e], one["field.weight"][0],
                                   rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(curve[0, e], c1[0, 0], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(curve[-1], forecast_mse(model, phi, y0, traj).mean(1),
                               rtol=1e-12, atol=1e-14)
    full, _ = fine_tune(model, None, y0, traj, steps=3, lr=0.02)
    same, _ = fine_tune(model, None, y0, traj, steps=3, lr=0.02, batch=3)
    torch.testing.assert_close(full["field.weight"], same["field.weight"], rtol=0, atol=0)
    for bad in (0, 4, 1.5):
        with pytest.raises(ConfigError, match=rf"batch={bad!r} is not allowed.*\[1, 3\]"):
            fine_tune(model, None, y0, traj, steps=1, lr=0.1, batch=bad)


def test_euler_rollout_is_the_exact_product():
    """method="euler": y_{n+1} = (I + h A) y_n, h = 0.25 / substeps, to round-off."""
    lin = nn.Linear(2, 2, bias=False).double()
    with torch.no_grad():
        lin.weight.copy_(rotation(1.3))
    model = Forecaster(lin, T, substeps=2, method="euler", flatten=False)
    y0 = torch.tensor([[1.0, -0.5]], dtype=torch.float64)
    step = torch.eye(2, dtype=torch.float64) + 0.125 * rotation(1.3)
    expect = [y0[0]]
    for _ in range(8):
        expect.append(step @ step @ expect[-1])
    torch.testing.assert_close(model(y0)[0], torch.stack(expect), rtol=1e-14, atol=1e-14)
    with pytest.raises(ConfigError, match=r"method='rk2' is not allowed; use one of rk4, euler"):
        Forecaster(lin, T, method="rk2")


def test_validated_fit_keeps_the_best_checked_iterate(caplog):
    """Training data rotate at 1.2, validation data at 1.1, start at 1.0: the fit passes
    the validation optimum on its way, so the kept iterate is an interior check; it
    equals a plain fine_tune of best_step updates (same draws), and best_step is the
    first argmin of the mean validation MSE over the checks 0, every, ..., steps."""
    y0 = torch.tensor([[[1.0, 0.5], [0.3, -1.0]]], dtype=torch.float64)      # [1, 2, 2]
    train = exact(1.2, y0[0])[None]
    val_y0 = torch.tensor([[[-0.5, 1.0]]], dtype=torch.float64)
    val = exact(1.1, val_y0[0])[None]
    model = linear_model(1.0, substeps=2)
    with caplog.at_level(logging.INFO, logger="scimeta.train.forecast"):
        fit = fine_tune_validated(model, None, y0, train, val_y0, val, steps=120, lr=0.01,
                                  every=10, batch=1, seed=3)
    progress = [r.getMessage() for r in caplog.records if r.name == "scimeta.train.forecast"]
    assert len(progress) == 13 and progress[-1].startswith("fit: update 120/120, validation")
    assert f"at update {fit.best_step})" in progress[-1]
    assert fit.val_steps.tolist() == list(range(0, 121, 10))
    mean = fit.val_curve.mean(1)
    assert fit.best_step == int(fit.val_steps[int(torch.argmin(mean))])
    assert 0 < fit.best_step < 120                       # passed the optimum: interior
    assert mean[-1] > 1.5 * mean.min()
    plain, curve = fine_tune(model, None, y0, train, steps=fit.best_step, lr=0.01,
                             batch=1, seed=3)
    torch.testing.assert_close(fit.phi["field.weight"], plain["field.weight"], rtol=0, atol=0)
    torch.testing.assert_close(fit.curve[:fit.best_step], curve[:-1], rtol=0, atol=0)
    torch.testing.assert_close(forecast_mse(model, fit.phi, val_y0, val).mean(),
                               mean.min(), rtol=1e-12, atol=0)
    with pytest.raises(ConfigError, match=r"every=0 is not allowed"):
        fine_tune_validated(model, None, y0, train, val_y0, val, steps=1, lr=0.1, every=0)
    with pytest.raises(ConfigError, match=r"val_y0 has 2 environments; y0 has 1"):
        fine_tune_validated(model, None, y0, train, val_y0.expand(2, 1, 2),
                            val.expand(2, 1, 9, 2), steps=1, lr=0.1)


def test_cosine_schedule_is_the_closed_form_rate_sequence():
    """schedule="cosine": update k of n takes SGD at lr (1 + cos(pi k / n)) / 2, i.e.
    it equals n single-update fits at those rates in turn (float64, round-off)."""
    y0 = torch.tensor([[[1.0, 0.5], [0.3, -1.0]]], dtype=torch.float64)
    traj = exact(1.2, y0[0])[None]
    model = linear_model(1.0, substeps=2)
    n, lr = 4, 0.05
    phi, curve = fine_tune(model, None, y0, traj, steps=n, lr=lr, optimizer="sgd",
                           schedule="cosine")
    step = None
    for k in range(n):
        rate = lr * (1 + math.cos(math.pi * k / n)) / 2
        step, c = fine_tune(model, step, y0, traj, steps=1, lr=rate, optimizer="sgd")
        torch.testing.assert_close(curve[k], c[0], rtol=1e-12, atol=0)
    torch.testing.assert_close(phi["field.weight"], step["field.weight"], rtol=1e-12,
                               atol=0)
    const, _ = fine_tune(model, None, y0, traj, steps=n, lr=lr, optimizer="sgd")
    assert (const["field.weight"] - phi["field.weight"]).abs().max() > 1e-4
    with pytest.raises(ConfigError, match=r"schedule='linear' is not allowed.*constant, "
                                          r"cosine"):
        fine_tune(model, None, y0, traj, steps=1, lr=0.1, schedule="linear")


def test_teacher_forcing_spans_one_step_fits_to_full_rollouts():
    """LEADS's rule: k = 0 is the plain full-rollout fit; k = 1 restarts every interval
    from the observed state, so the loss is the one-step-ahead MSE of the model's
    interval map P (here RK4, 2 substeps, of a linear field: exactly a matrix);
    eps = k ** (1 + s // every); bad schedules are refused by name."""
    from scimeta.train._teacher_forcing import draw_restarts, restart_rate

    y0 = torch.tensor([[[1.0, 0.5], [0.3, -1.0]], [[-0.2, 0.8], [0.6, 0.1]]],
                      dtype=torch.float64)
    traj = torch.stack([exact(1.2, y0[0]), exact(0.7, y0[1])])            # [2, 2, 9, 2]
    model = linear_model(1.0, substeps=2)
    plain, c_plain = fine_tune(model, None, y0, traj, steps=3, lr=0.05)
    off, c_off = fine_tune(model, None, y0, traj, steps=3, lr=0.05, teacher_forcing=(0.0, 1))
    torch.testing.assert_close(off["field.weight"], plain["field.weight"], rtol=1e-13, atol=0)
    torch.testing.assert_close(c_off, c_plain, rtol=1e-13, atol=0)
    on, c_on = fine_tune(model, None, y0, traj, steps=1, lr=0.05, teacher_forcing=(1.0, 1))
    one_interval = Forecaster(model.field, T[:2], substeps=2, flatten=False)
    p = one_interval(torch.eye(2, dtype=torch.float64))[:, 1].T          # y1 = P y0
    pred = torch.cat([traj[:, :, :1], (traj[:, :, :-1] @ p.T)], dim=2)
    torch.testing.assert_close(c_on[0], (pred - traj).pow(2).mean(dim=(1, 2, 3)),
                               rtol=1e-12, atol=0)
    assert (c_on[0] < 0.5 * c_plain[0]).all()        # one-step fits are the easier loss
    # the last curve entry is a full rollout (no restarts) of the fitted parameters
    torch.testing.assert_close(c_on[-1], forecast_mse(model, on, y0, traj).mean(1),
                               rtol=1e-12, atol=0)
    assert restart_rate((0.5, 3), 0) == 0.5 and restart_rate((0.5, 3), 7) == 0.125
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    flags = draw_restarts(0.5, 3, 9, g1)
    assert flags.shape == (3, 8) and flags[:, 0].all() and not flags[:, 1:].all()
    assert torch.equal(flags, draw_restarts(0.5, 3, 9, g2))
    for bad in ((1.5, 10), (0.99, 0), 0.99, (0.99, 2.5)):
        with pytest.raises(ConfigError, match=r"teacher_forcing=.* is not allowed"):
            fine_tune(model, None, y0, traj, steps=1, lr=0.1, teacher_forcing=bad)


def test_penalty_adds_its_gradient_to_each_update():
    """penalty(phi, y0, target) -> [E] joins the loss: one SGD update equals
    W - lr (dMSE/dW + dP/dW) per environment, here with P = c ||W||^2 (gradient 2cW);
    the curve keeps the MSE alone; a wrong shape or a non-callable is refused."""
    y0 = torch.tensor([[[1.0, 0.5]], [[0.3, -1.0]]], dtype=torch.float64)    # [2, 1, 2]
    traj = torch.stack([exact(1.2, y0[0]), exact(0.7, y0[1])])
    model = linear_model(1.0, substeps=2)
    c, lr = 0.3, 0.05
    seen = []

    def ridge(phi, y0_b, target_b):
        seen.append((tuple(y0_b.shape), tuple(target_b.shape)))
        return c * phi["field.weight"].pow(2).sum(dim=(1, 2))

    pen, curve = fine_tune(model, None, y0, traj, steps=1, lr=lr, optimizer="sgd",
                           penalty=ridge)
    plain, curve_plain = fine_tune(model, None, y0, traj, steps=1, lr=lr, optimizer="sgd")
    w0 = model.field.weight.detach()
    torch.testing.assert_close(pen["field.weight"], plain["field.weight"] - lr * 2 * c * w0,
                               rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(curve[0], curve_plain[0], rtol=0, atol=0)
    assert seen == [((2, 1, 2), (2, 1, 9, 2))]
    with pytest.raises(ConfigError, match=r"penalty returned shape \(\); it must return "
                                          r"one value per environment, \[2\]"):
        fine_tune(model, None, y0, traj, steps=1, lr=lr,
                  penalty=lambda phi, a, b: phi["field.weight"].sum())
    with pytest.raises(ConfigError, match="penalty=3 is not allowed"):
        fine_tune(model, None, y0, traj, steps=1, lr=lr, penalty=3)
