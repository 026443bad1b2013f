"""scimeta.bayes.metrics against closed forms, numerical integration and sampling (float64)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from scimeta.bayes import metrics
from scimeta.errors import ConfigError

D = torch.float64


def test_gaussian_nll_is_the_log_density() -> None:
    """NLL = −log N(y; μ, σ²) (scipy), ≤ 1e-12 relative."""
    g = torch.Generator().manual_seed(0)
    y, mu = torch.randn(50, 3, generator=g, dtype=D), torch.randn(50, 3, generator=g, dtype=D)
    var = torch.rand(50, 3, generator=g, dtype=D) + 0.05
    want = -stats.norm.logpdf(y.numpy(), mu.numpy(), np.sqrt(var.numpy()))
    np.testing.assert_allclose(metrics.gaussian_nll(y, mu, var).numpy(), want, rtol=1e-12)


@pytest.mark.parametrize(("y", "mu", "sd"), [(0.3, 0.0, 1.0), (-2.5, 1.0, 0.4),
                                             (4.0, 3.9, 2.5), (0.0, 0.0, 0.01)])
def test_crps_equals_the_integral_of_the_squared_cdf_difference(y, mu, sd) -> None:
    """CRPS = ∫(F(z) − 1{z ≥ y})² dz, by scipy.quad on (−∞, y] and [y, ∞), ≤ 1e-8 relative."""
    F = stats.norm(mu, sd).cdf
    left, _ = integrate.quad(lambda z: F(z) ** 2, -np.inf, y, epsabs=1e-13, epsrel=1e-12)
    right, _ = integrate.quad(lambda z: (F(z) - 1) ** 2, y, np.inf, epsabs=1e-13, epsrel=1e-12)
    got = float(metrics.crps_gaussian(torch.tensor(y, dtype=D), torch.tensor(mu, dtype=D),
                                      torch.tensor(sd**2, dtype=D)))
    assert got == pytest.approx(left + right, rel=1e-8)


def test_coverage_of_draws_from_the_prediction_is_nominal() -> None:
    """y ~ N(μ, σ²) itself: each level's coverage is within 4 binomial standard errors
    sqrt(p(1 − p)/N) of p (N = 200 000, seeded); per task within 4 of theirs too."""
    g = torch.Generator().manual_seed(0)
    B, N = 4, 50_000
    mu = torch.randn(B, N, 1, generator=g, dtype=D) * 3
    var = torch.rand(B, N, 1, generator=g, dtype=D) * 2 + 0.1
    y = mu + var.sqrt() * torch.randn(B, N, 1, generator=g, dtype=D)
    cov = metrics.coverage(y, mu, var)
    per_task = metrics.coverage(y, mu, var, per_task=True)
    assert per_task.shape == (B, len(metrics.LEVELS))
    for i, p in enumerate(metrics.LEVELS):
        assert abs(float(cov[i]) - p) <= 4 * math.sqrt(p * (1 - p) / (B * N))
        assert torch.all((per_task[:, i] - p).abs() <= 4 * math.sqrt(p * (1 - p) / N))
    torch.testing.assert_close(per_task.mean(0), cov, rtol=1e-14, atol=0)   # equal N per task
    nominal, observed = metrics.calibration_curve(y, mu, var)
    assert nominal.shape == observed.shape == (19,)
    assert torch.all((observed - nominal).abs() <= 4 * torch.sqrt(nominal * (1 - nominal)
                                                                  / (B * N)))


def test_interval_edges_and_summary() -> None:
    """μ ± 1.6449σ is the 90 % interval: a point just inside is covered, just outside not;
    summary holds the mean NLL, CRPS and each coverage."""
    z90 = stats.norm.ppf(0.95)
    mu, var = torch.zeros(2, dtype=D), torch.full((2,), 4.0, dtype=D)
    y = torch.tensor([2 * z90 * (1 - 1e-9), 2 * z90 * (1 + 1e-9)], dtype=D)
    assert metrics.interval_hits(y, mu, var, 0.9).tolist() == [True, False]
    s = metrics.summary(y, mu, var)
    assert set(s) == {"nll", "crps", "coverage@0.5", "coverage@0.8", "coverage@0.9",
                      "coverage@0.95"}
    assert float(s["coverage@0.9"]) == 0.5 and float(s["coverage@0.95"]) == 1.0
    assert float(s["nll"]) == pytest.approx(float(metrics.gaussian_nll(y, mu, var).mean()),
                                            rel=1e-15)
    per = metrics.summary(y[None], mu[None], var[None], per_task=True)
    assert per["crps"].shape == (1,)


def test_bad_inputs_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="var must be > 0"):
        metrics.gaussian_nll(0.0, 0.0, 0.0)
    with pytest.raises(ConfigError, match="levels"):
        metrics.coverage(torch.zeros(3), torch.zeros(3), torch.ones(3), levels=(0.5, 1.0))
    with pytest.raises(ConfigError, match="broadcast"):
        metrics.crps_gaussian(torch.zeros(3), torch.zeros(2), torch.ones(3))
