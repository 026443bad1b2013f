"""Forecast bands of scimeta.bayes (float64): a Laplace posterior over a Forecaster's
vector field, rolled out by posterior samples or linearized.

Closed form: the constant field f(y; θ) = θ gives y(t) = y0 + θ(t − t₀) exactly under RK4,
a model linear in θ. With noise σ_c per state channel and prior N(θ₀, Λ⁻¹) the
posterior is Bayesian linear regression: precision diag(S/σ_c²) + Λ,
S = N Σ_{k>=1} (t_k − t₀)², and the forecast at time t has covariance (t − t₀)² Σ.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from torch import nn

from scimeta.bayes import (
    ForecastPosterior,
    bands_from_samples,
    fit_forecast,
    rollout_params,
)
from scimeta.bayes._curvature import model_fn
from scimeta.bayes._forecast import forecast_curvature
from scimeta.errors import ConfigError
from scimeta.meta import MAML
from scimeta.nn import Forecaster, VectorFieldNet, rk4_rollout

D = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class ConstField(nn.Module):
    """f(y; θ) = θ: the rollout y0 + θ(t − t₀) is linear in θ (and exact under RK4)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.zeros(c, dtype=D))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.theta.expand_as(y)


class LVField(nn.Module):
    """Lotka-Volterra with its four rates as parameters (a grey-box surrogate)."""

    def __init__(self, p) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.as_tensor(p, dtype=D).clone())

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        a, b, d, g = self.p
        u, v = y[..., 0], y[..., 1]
        return torch.stack([a * u - b * u * v, d * u * v - g * v], -1)


def _const_problem(seed=0, n=3, sigma=(0.2, 0.5)):
    g = _gen(seed)
    t = torch.linspace(0.5, 2.5, 6, dtype=D)
    c = len(sigma)
    model = Forecaster(ConstField(c), t)
    y0 = torch.randn(n, c, generator=g, dtype=D)
    theta_true = torch.tensor([0.7, -0.4], dtype=D)
    dt = (t - t[0])[:, None]
    s = torch.tensor(sigma, dtype=D)
    traj = y0[:, None] + theta_true * dt + s * torch.randn(n, t.shape[0], c, generator=g, dtype=D)
    traj[:, 0] = y0
    theta0 = torch.tensor([0.3, 0.1], dtype=D)
    L = torch.tensor([[2.0, 0.8], [0.8, 1.5]], dtype=D)          # a [P, P] prior precision
    S = n * dt[1:].square().sum()
    prec = torch.diag(S / s.square()) + L
    rhs = ((traj[:, 1:] - y0[:, None]) * dt[1:]).sum((0, 1)) / s.square() + L @ theta0
    phi = torch.linalg.solve(prec, rhs)
    return dict(model=model, t=t, y0=y0, traj=traj, s=s, theta0=theta0, L=L, prec=prec,
                phi=phi, dt=dt)


def _fit_const(pb, **kw) -> ForecastPosterior:
    return fit_forecast(pb["model"], {"field.theta": pb["phi"]}, pb["y0"], pb["traj"],
                        prior_mean={"field.theta": pb["theta0"]}, prior_precision=pb["L"],
                        noise_std=pb["s"], **kw)


def test_linear_in_parameters_is_exact():
    """Posterior = Bayesian linear regression; linearized band variance = (t − t₀)² Σ_cc
    (≤ 1e-10); log Z = exact evidence; full, hessian and chunked agree."""
    pb = _const_problem()
    cov = torch.linalg.inv(pb["prec"])
    for structure, chunk in (("full", None), ("full", 1), ("hessian", None)):
        post = _fit_const(pb, structure=structure, chunk_size=chunk)
        torch.testing.assert_close(post.laplace.precision(), pb["prec"], rtol=1e-12, atol=0)
    y0 = torch.tensor([1.0, -2.0], dtype=D)
    grid = torch.linspace(0.0, 6.0, 13, dtype=D)                     # a longer horizon
    mean, var = post.linearized_moments(y0, t=grid, chunk=1)
    dt = (grid - grid[0])[:, None]
    torch.testing.assert_close(mean, y0 + pb["phi"] * dt, rtol=0, atol=1e-12)
    assert (var - dt.square() * torch.diag(cov)).abs().max() <= 1e-10
    ds = post.linearized_bands(y0, t=grid, levels=(0.5, 0.9))
    z90 = 1.6448536269514722
    np.testing.assert_allclose(ds["upper"].sel(level=0.9) - ds["mean"],
                               z90 * np.sqrt(dt.numpy() ** 2 * np.diag(cov.numpy())),
                               rtol=1e-10, atol=1e-12)
    # evidence: vec(y) ~ N(y0 + X θ₀, σ² I + X Λ⁻¹ Xᵀ), rows (n, k >= 1, c)
    n, T, c = pb["traj"].shape
    X = torch.zeros(n, T - 1, c, c, dtype=D)
    for j in range(c):
        X[..., j, j] = pb["dt"][1:, 0]
    X = X.reshape(-1, c)
    resid = (pb["traj"][:, 1:] - pb["y0"][:, None]).reshape(-1) - X @ pb["theta0"]
    noise = pb["s"].square().repeat(n * (T - 1))
    exact = multivariate_normal(np.zeros(len(resid)), (torch.diag(noise)
                                + X @ torch.linalg.inv(pb["L"]) @ X.T).numpy()).logpdf(
        resid.numpy())
    lz = float(post.laplace.log_marginal_likelihood())
    assert abs(lz - exact) <= 1e-8 * abs(exact)


def test_samples_match_closed_form_pushforward():
    """Sample mean/cov of y(t) vs y0 + φ(t − t₀), (t − t₀)² Σ: within 5 standard errors
    (S = 20000, seeded); the sample band agrees with the linearized one in std."""
    pb = _const_problem(seed=1)
    post = _fit_const(pb)
    cov = torch.linalg.inv(pb["prec"])
    S = 20000
    y0 = torch.tensor([0.5, 0.2], dtype=D)
    traj = post.sample_trajectories(y0, S, chunk=4096, generator=_gen(3))   # [S, T, C]
    assert traj.shape == (S, 6, 2)
    dt = pb["dt"]
    for k in range(1, 6):
        x = traj[:, k]
        want_mean = y0 + pb["phi"] * dt[k]
        want_cov = dt[k] ** 2 * cov
        se_mean = (torch.diag(want_cov) / S).sqrt()
        assert bool(((x.mean(0) - want_mean).abs() <= 5 * se_mean).all())
        emp = torch.cov(x.T)
        # SE of a covariance entry: sqrt((Σ_ii Σ_jj + Σ_ij²) / S)
        se_cov = ((torch.outer(torch.diag(want_cov), torch.diag(want_cov))
                   + want_cov.square()) / S).sqrt()
        assert bool(((emp - want_cov).abs() <= 5 * se_cov).all())
    bands = post.sample_bands(y0, S, generator=_gen(4), chunk=5000)
    lin = post.linearized_bands(y0)
    np.testing.assert_allclose(bands["std"][1:], lin["std"][1:], rtol=5 / math.sqrt(2 * S))
    np.testing.assert_array_equal(bands["std"][0], 0.0)            # y(t₀) = y0
    assert bands["mean"].dims == ("time", "state")
    assert bands["quantiles"].dims == ("quantile", "time", "state")
    assert bands["lower"].dims == ("level", "time", "state")
    np.testing.assert_allclose(bands["quantile"], [0.025, 0.05, 0.25, 0.5, 0.75, 0.95, 0.975])


def _net_problem(seed=0, n=3, hidden=(6,)):
    """A VectorFieldNet forecaster adapted by MAML on Lotka-Volterra trajectories."""
    torch.manual_seed(seed)
    t = torch.linspace(0.0, 2.0, 9, dtype=D)
    true = Forecaster(LVField([1.0, 0.8, 0.6, 0.9]), t, substeps=2)
    y0 = 0.5 + torch.rand(n, 2, generator=_gen(seed), dtype=D)
    with torch.no_grad():
        traj = true(y0)                                                # [n, T·C]
    traj = traj + 0.02 * torch.randn(traj.shape, generator=_gen(seed + 1), dtype=D)
    model = Forecaster(VectorFieldNet(2, hidden=hidden), t, substeps=2).double()
    learner = MAML(model, inner_lr=0.05, inner_steps=3)
    theta = {k: v.detach() for k, v in learner.init_params().items()}
    phi = {k: v.detach() for k, v in learner.adapt(theta, y0, traj).items()}
    return learner, theta, phi, y0, traj


def test_zero_covariance_reproduces_the_mode():
    learner, theta, phi, y0, traj = _net_problem()
    post = fit_forecast(learner, phi, y0, traj, prior_mean=theta, noise_std=0.05)
    y_new = torch.tensor([[0.8, 1.1], [1.3, 0.6]], dtype=D)
    mode = post.trajectory(y_new)                                       # [2, T, 2]
    with torch.no_grad():
        direct = torch.func.functional_call(learner.model, phi, (y_new,)).reshape(2, -1, 2)
    assert torch.equal(mode, direct) or (mode - direct).abs().max() <= 1e-14
    ds = post.sample_bands(y_new, 7, scale=0.0, chunk=3, generator=_gen(0))
    assert ds["quantiles"].dims == ("quantile", "trajectory", "time", "state")
    np.testing.assert_allclose(ds["quantiles"], np.broadcast_to(mode.numpy(), (7, 2, 9, 2)),
                               rtol=0, atol=1e-13)
    np.testing.assert_allclose(ds["std"], 0.0, atol=1e-13)
    draws = {k: v.expand(5, *v.shape) for k, v in post.params.items()}
    rolled = rollout_params(post.rollout, draws, y_new, post.rollout.t, chunk=2)
    assert (rolled - mode).abs().max() <= 1e-13


def test_forecast_curvature_equals_dense_definition():
    """full/diag per state channel = Σ over (trajectory, time) of the dense Jacobian's rows;
    hessian = autograd Hessian of ½ Σ (y − f)² per channel; chunked = unchunked."""
    learner, theta, phi, y0, traj = _net_problem(n=2, hidden=(3,))
    post = fit_forecast(learner, phi, y0, traj, prior_mean=theta, structure="full")
    lap = post.laplace
    f = model_fn(lap.model, lap.fixed, lap.flat)
    y = traj.reshape(2, 9, 2)[:, 1:]
    J = torch.autograd.functional.jacobian(lambda v: f(v, y0), lap.mean)   # [n, 8·2, P]
    J = J.reshape(2, 8, 2, -1)
    dense = torch.einsum("ntcp,ntcq->cpq", J, J)
    torch.testing.assert_close(lap.curv, dense, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(forecast_curvature(f, lap.mean, y0, y, "full", 1), dense,
                               rtol=1e-12, atol=1e-12)
    diag = forecast_curvature(f, lap.mean, y0, y, "diag", 1)
    torch.testing.assert_close(diag, torch.diagonal(dense, dim1=1, dim2=2), rtol=1e-12,
                               atol=1e-12)
    H = forecast_curvature(f, lap.mean, y0, y, "hessian", None)
    for c in range(2):
        Hc = torch.autograd.functional.hessian(
            lambda v, c=c: 0.5 * (y[..., c] - f(v, y0).reshape(2, 8, 2)[..., c]).square().sum(),
            lap.mean)
        torch.testing.assert_close(H[c], Hc, rtol=1e-10, atol=1e-12)


def test_evidence_fit_fixed_points_per_state_channel():
    """optimize='both': σ_c² = (RSS_c + tr(Σ GGN_c)) / (N (T − 1)) per state channel and
    τ‖φ − θ‖² = P − τ tr Σ (MacKay) at the optimum of log Z."""
    learner, theta, phi, y0, traj = _net_problem(seed=2)
    post = fit_forecast(learner, phi, y0, traj, prior_mean=theta, noise_std=[0.1, 0.1],
                        prior_precision=1.0, optimize="both").laplace
    cov = post.covariance()
    n_obs = 3 * 8
    tr_g = torch.einsum("pq,cqp->c", cov, post.curv)
    torch.testing.assert_close(post.noise_var, (post.sq_residual + tr_g) / n_obs, rtol=1e-5,
                               atol=0)
    tau = post.prior.value[0]
    P = post.flat.numel
    lhs = tau * (post.mean - post.prior_mean).square().sum()
    torch.testing.assert_close(lhs, P - tau * torch.trace(cov), rtol=1e-5, atol=0)


def test_sample_and_linearized_bands_agree_for_a_tight_posterior():
    """Nonlinear field, small Σ: the linearization is accurate, sample std ≈ GLM std."""
    learner, theta, phi, y0, traj = _net_problem(seed=3)
    post = fit_forecast(learner, phi, y0, traj, prior_mean=theta, noise_std=0.01,
                        prior_precision=100.0, structure="diag")
    y_new = torch.tensor([0.9, 0.9], dtype=D)
    grid = torch.linspace(0.0, 4.0, 17, dtype=D)                      # beyond the data
    s = post.sample_bands(y_new, 3000, t=grid, generator=_gen(5), chunk=1000)
    lin = post.linearized_bands(y_new, t=grid, chunk=7)
    ratio = (s["std"][1:] / lin["std"][1:]).values
    assert np.all(np.abs(ratio - 1) < 0.1), ratio
    width = (lin["upper"] - lin["lower"]).values                       # [level, T, C]
    assert np.all(np.diff(width[:, 1:], axis=0) > 0)                   # wider with the level


def _grey_box_coverage(seed: int, n_obs: int = 3, sigma: float = 0.05) -> list[float]:
    """Coverage of the 90 % bands (samples, GLM, noise only) of 40 new noisy trajectories
    after fitting the grey-box LV rates (MAP by L-BFGS) on ``n_obs`` noisy ones."""
    t = torch.linspace(0.0, 4.0, 9, dtype=D)
    true = Forecaster(LVField([1.0, 0.8, 0.6, 0.9]), t, substeps=2)

    def observe(y0, s):
        with torch.no_grad():
            x = true(y0).reshape(y0.shape[0], -1, 2)
        x = x + sigma * torch.randn(x.shape, generator=_gen(s), dtype=D)
        x[:, 0] = y0
        return x

    y0 = 0.6 + 0.8 * torch.rand(n_obs, 2, generator=_gen(seed), dtype=D)
    obs = observe(y0, seed + 1)
    model = Forecaster(LVField([0.8] * 4), t, substeps=2)
    theta = {"field.p": torch.full((4,), 0.8, dtype=D)}
    p = theta["field.p"].clone().requires_grad_(True)
    opt = torch.optim.LBFGS([p], max_iter=50, tolerance_grad=1e-12, tolerance_change=1e-15,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        pred = torch.func.functional_call(model, {"field.p": p}, (y0,)).reshape(obs.shape)
        loss = 0.5 * (obs[:, 1:] - pred[:, 1:]).square().sum() / sigma**2 \
            + 0.5 * (p - theta["field.p"]).square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    post = fit_forecast(model, {"field.p": p.detach()}, y0, obs, prior_mean=theta,
                        noise_std=sigma)
    y_new = 0.6 + 0.8 * torch.rand(40, 2, generator=_gen(seed + 2), dtype=D)
    held = observe(y_new, seed + 3)[:, 1:].numpy()
    lin = post.linearized_bands(y_new, observation_noise=True)
    out = []
    for ds in (post.sample_bands(y_new, 400, observation_noise=True, generator=_gen(14)), lin):
        lo = ds["lower"].sel(level=0.9).values[:, 1:]
        hi = ds["upper"].sel(level=0.9).values[:, 1:]
        out.append(float(np.mean((held >= lo) & (held <= hi))))
    out.append(float(np.mean(np.abs(held - lin["mean"].values[:, 1:]) <= 1.6448536 * sigma)))
    return out


def test_calibration_grey_box_lotka_volterra():
    """Well-specified grey-box LV (4 rates), σ = 0.05 known, 3 observed trajectories of 8
    times: over 6 data sets, the 90 % band (observation noise included) covers held-out
    noisy points of 40 new initial states on average 0.85-0.95 (measured 0.891 samples,
    0.899 GLM; the noise-only band 0.871, per data set 0.82-0.91). One data set alone
    varies more (parameter errors are shared by all its forecasts)."""
    cover = np.array([_grey_box_coverage(10 * s + 10) for s in range(6)])   # [6, 3]
    mean = cover.mean(0)
    assert 0.85 <= mean[0] <= 0.95 and 0.85 <= mean[1] <= 0.95, cover
    assert np.all(cover[:, 1] >= cover[:, 2])          # GLM band ⊇ noise-only band


def test_bands_from_samples_reduces_exactly():
    s = torch.randn(101, 4, 3, generator=_gen(0), dtype=D)
    ds = bands_from_samples(s, s[0], torch.arange(4.0, dtype=D), levels=(0.9,))
    np.testing.assert_allclose(ds["mean"], s.mean(0), rtol=1e-14)
    np.testing.assert_allclose(ds["std"], s.std(0), rtol=1e-14)
    srt = s.sort(0).values                                            # 101 order statistics
    np.testing.assert_allclose(ds["quantiles"].sel(quantile=0.5), srt[50], rtol=0, atol=0)
    np.testing.assert_allclose(ds["lower"].sel(level=0.9), srt[5], rtol=0, atol=1e-15)
    np.testing.assert_allclose(ds["upper"].sel(level=0.9), srt[95], rtol=0, atol=1e-15)
    s2 = s[:37]                                       # quantiles between order statistics
    ds2 = bands_from_samples(s2, s2[0], torch.arange(4.0, dtype=D))
    qs = torch.tensor(ds2["quantile"].values, dtype=D)
    np.testing.assert_allclose(ds2["quantiles"], torch.quantile(s2, qs, dim=0), rtol=1e-13,
                               atol=1e-14)


def test_bad_input_is_named():
    pb = _const_problem()
    post = _fit_const(pb)
    y0 = torch.zeros(2, dtype=D)
    cases = [
        (lambda: post.sample_bands(y0, 0), r"n_samples=0 is not allowed.*int >= 1"),
        (lambda: post.sample_bands(y0, 5, chunk=-1), r"chunk=-1 is not allowed"),
        (lambda: post.linearized_bands(y0, chunk=0), r"chunk=0 is not allowed"),
        (lambda: post.sample_bands(y0, 5, scale=-1.0), r"scale=-1.0 is not allowed"),
        (lambda: post.linearized_bands(y0, t=torch.tensor([0.0, 1.0, 1.0], dtype=D)),
         r"t=.* is not allowed; give a 1-d strictly increasing grid"),
        (lambda: post.linearized_bands(y0, t=3.0), r"t=3.0 is not allowed"),
        (lambda: post.linearized_bands(y0, levels=(0.5, 1.0)), r"levels=.*in \(0, 1\)"),
        (lambda: post.trajectory(torch.zeros(3, dtype=D)), r"y0=\(3,\) is not allowed"),
        (lambda: _fit_const(pb, structure="kron"),
         r"structure='kron' is not allowed for forecasts; valid: full, diag, hessian"),
        (lambda: fit_forecast(nn.Linear(2, 2), {}, pb["y0"], pb["traj"]),
         r"model=Linear is not allowed; give a scimeta.nn.Forecaster"),
        (lambda: fit_forecast(pb["model"], {"field.theta": pb["phi"]}, pb["y0"],
                              pb["traj"][:, :3]), r"traj=\(3, 3, 2\) is not allowed"),
        (lambda: _fit_const(pb, structure="diag"), r"structure='diag' needs a diagonal"),
    ]
    for call, pattern in cases:
        with pytest.raises(ConfigError, match=pattern):
            call()


def test_rk4_constant_field_is_exact():
    """The premise of the closed form: RK4 integrates dy/dt = θ exactly."""
    t = torch.tensor([0.0, 0.3, 1.1, 2.0], dtype=D)
    th = torch.tensor([0.7, -1.3], dtype=D)
    y = rk4_rollout(lambda _s, y: th.expand_as(y), torch.ones(2, dtype=D), t, substeps=3)
    torch.testing.assert_close(y, 1 + th * t[:, None], rtol=0, atol=1e-15)
