"""LEADS's decomposition f + g_e and its penalty (bench/_leads_decomposition.py)
against closed forms: a linear g, whose spectral norm and state ratio are exact."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from scimeta.nn import Forecaster
from scimeta.train.forecast import fine_tune, forecast_mse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
try:
    from _leads_decomposition import (
        EPSILON,
        LeadsField,
        env_names,
        env_start,
        leads_penalty,
        silent_env,
        spectral_sq,
    )
finally:
    sys.path.remove(str(ROOT / "bench"))

T = torch.linspace(0.0, 1.0, 5, dtype=torch.float64)


def linear_leads(seed: int = 0) -> Forecaster:
    torch.manual_seed(seed)
    f, g = nn.Linear(2, 2, bias=False).double(), nn.Linear(2, 2, bias=False).double()
    return Forecaster(LeadsField(f, g), T, substeps=2)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny graphs: per-op overhead


def test_penalty_is_the_closed_form_for_a_linear_g():
    """Omega_e = lip * sigma_max(A_e)^2 + mean_y (|A_e y| / (|y| + 1e-5))^2, times
    E * lambda_inv, per environment; sigma_max from numpy's SVD."""
    model = linear_leads()
    rng = np.random.default_rng(1)
    a = rng.normal(size=(3, 2, 2))                                    # g_e = A_e, E = 3
    phi = {"field.shared.weight": model.field.shared.weight.detach(),
           "field.env.weight": torch.as_tensor(a)}
    target = torch.as_tensor(rng.normal(size=(3, 2, 5, 2)))           # [E, b, T, S]
    lam, lip = 0.2, 0.03
    got = leads_penalty(model, lam, lip)(phi, target[:, :, 0], target).numpy()
    y = target.numpy().reshape(3, -1, 2)
    for e in range(3):
        sigma = np.linalg.svd(a[e], compute_uv=False)[0]
        gy = y[e] @ a[e].T
        ratio = np.mean((np.linalg.norm(gy, axis=1) / (np.linalg.norm(y[e], axis=1)
                                                          + EPSILON)) ** 2)
        np.testing.assert_allclose(got[e], 3 * lam * (lip * sigma**2 + ratio), rtol=1e-12)


def test_grid_states_take_the_norm_per_point_over_channels():
    """channels=C: a flat channel-fastest state [P * C] has its ratio per grid point,
    |g(y)_p| / (|y_p| + 1e-5) over the C channels, the mean over points and times."""
    torch.manual_seed(0)
    f, g = nn.Linear(4, 4, bias=False).double(), nn.Linear(4, 4, bias=False).double()
    model = Forecaster(LeadsField(f, g), T, substeps=2)
    rng = np.random.default_rng(3)
    a = rng.normal(size=(2, 4, 4))
    phi = {"field.shared.weight": f.weight.detach(), "field.env.weight": torch.as_tensor(a)}
    target = torch.as_tensor(rng.normal(size=(2, 1, 5, 4)))          # 2 points x 2 channels
    got = leads_penalty(model, 1.0, 0.0, channels=2)(phi, target[:, :, 0], target).numpy()
    y = target.numpy().reshape(2, -1, 4)
    for e in range(2):
        gy = (y[e] @ a[e].T).reshape(-1, 2)
        yp = y[e].reshape(-1, 2)
        ratio = np.mean((np.linalg.norm(gy, axis=1) / (np.linalg.norm(yp, axis=1)
                                                          + EPSILON)) ** 2)
        np.testing.assert_allclose(got[e], 2 * ratio, rtol=1e-12)


def test_penalty_gradient_matches_finite_differences():
    model = linear_leads()
    rng = np.random.default_rng(2)
    target = torch.as_tensor(rng.normal(size=(2, 1, 5, 2)))
    pen = leads_penalty(model, 0.5, 0.1)
    f = model.field.shared.weight.detach()

    def total(w: torch.Tensor) -> torch.Tensor:
        return pen({"field.shared.weight": f, "field.env.weight": w}, target[:, :, 0],
                   target).sum()

    w = torch.as_tensor(rng.normal(size=(2, 2, 2)), dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(total, (w,), eps=1e-6, atol=1e-7)


def test_silent_env_forecasts_as_f_alone_and_fine_tune_moves_g_only():
    """A fresh g with its last layer zeroed leaves f + g = f; fitting names = g's
    parameters with f fixed changes g per environment and nothing else."""
    model = linear_leads()
    f_only = Forecaster(model.field.shared, T, substeps=2)
    p = {k: v.detach() for k, v in model.named_parameters()}
    start = silent_env(model, p, 2)
    assert env_names(model) == ["field.env.weight"]
    assert start["field.env.weight"].shape == (2, 2, 2)
    assert not start["field.env.weight"].any()
    y0 = torch.tensor([[[1.0, 0.5]], [[0.3, -1.0]]], dtype=torch.float64)
    target = torch.randn(2, 1, 5, 2, dtype=torch.float64)
    torch.testing.assert_close(forecast_mse(model, start, y0, target),
                               forecast_mse(f_only, None, y0, target), rtol=1e-14, atol=0)
    phi, _ = fine_tune(model, start, y0, target, steps=3, lr=0.05,
                       names=env_names(model), penalty=leads_penalty(model, 0.1, 0.1))
    assert torch.equal(phi["field.shared.weight"], p["field.shared.weight"])
    assert (phi["field.env.weight"] != 0).all()
    assert not torch.equal(phi["field.env.weight"][0], phi["field.env.weight"][1])


def test_fourier_spectral_weights_count_as_leads_complex_matrices():
    """A spectral weight [2, in, out, m1, m2, 2] is LEADS's weights1 and weights2, each
    the complex matrix [in, out*m1*m2]: sigma_max^2 of both, summed (numpy's SVD); a
    convolution's [out, in, k, k] is the matrix [out, in*k*k]."""
    from scimeta.nn import FourierVectorField

    g = FourierVectorField(1, (8, 8), modes=(2, 2), width=3).double()
    w = torch.stack([p.detach() for p in (g.spectral[0].weight, g.spectral[1].weight)])
    got = spectral_sq("field.env.spectral.0.weight", w).numpy()          # E = 2
    for e in range(2):
        a = w[e].numpy()
        want = sum(np.linalg.svd((a[k, ..., 0] + 1j * a[k, ..., 1]).reshape(3, -1),
                                 compute_uv=False)[0] ** 2 for k in range(2))
        np.testing.assert_allclose(got[e], want, rtol=1e-12)
    conv = torch.as_tensor(np.random.default_rng(4).normal(size=(2, 5, 3, 3, 3)))
    got = spectral_sq("field.env.net.0.weight", conv).numpy()
    for e in range(2):
        want = np.linalg.svd(conv[e].numpy().reshape(5, -1), compute_uv=False)[0] ** 2
        np.testing.assert_allclose(got[e], want, rtol=1e-12)


def test_env_start_draws_each_environment_its_own_g():
    """g of environment e is make_env() after manual_seed(seed + 1 + e); f is the
    model's own."""
    model = linear_leads()

    def make():
        return nn.Linear(2, 2, bias=False).double()

    start = env_start(model, make, 3, seed=5)
    for e in range(3):
        torch.manual_seed(5 + 1 + e)
        assert torch.equal(start["field.env.weight"][e], make().weight.detach())
    assert torch.equal(start["field.shared.weight"], model.field.shared.weight.detach())
    assert not torch.equal(start["field.env.weight"][0], start["field.env.weight"][1])
