"""scimeta.bayes against closed forms (float64): Bayesian linear regression, the
early-stopping prior, evidence maximisation's fixed points, the docs example.

Linear-Gaussian model y = X̃w + ε, ε ~ N(0, σ_c²) per output channel, prior
N(μ₀, τ⁻¹I): GGN = Hessian = X̃ᵀX̃/σ_c² per channel, precision P_c = X̃ᵀX̃/σ_c² + τI,
MAP P_c⁻¹(X̃ᵀy_c/σ_c² + τμ₀_c), evidence Σ_c log N(y_c; X̃μ₀_c, σ_c²I + X̃X̃ᵀ/τ),
predictive variance of f x̃ᵀP_c⁻¹x̃ (ORACLES.md, "Bayesian view"). X̃ = [X, 1]
when the layer has a bias.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from torch import nn

from scimeta.bayes import curvature, fit_laplace, inner_loop_prior, prior_from_inner_loop
from scimeta.errors import ConfigError
from scimeta.meta import MAML

D = torch.float64
ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class LinearProblem:
    """n points, d inputs, c outputs; exact Bayesian linear regression per channel."""

    def __init__(self, n=12, d=3, c=1, bias=False, sigma=(0.3,), tau=2.0, seed=0):
        g = _gen(seed)
        self.model = nn.Linear(d, c, bias=bias).double()
        self.X = torch.randn(n, d, generator=g, dtype=D)
        self.Xt = torch.cat([self.X, torch.ones(n, 1, dtype=D)], 1) if bias else self.X
        self.sigma = torch.tensor(sigma, dtype=D).expand(c)
        self.tau, self.n, self.d, self.c, self.bias = tau, n, d, c, bias
        k = self.Xt.shape[1]
        self.mu0 = torch.randn(c, k, generator=g, dtype=D)        # prior mean per channel
        w_true = torch.randn(c, k, generator=g, dtype=D)
        self.y = self.Xt @ w_true.T + self.sigma * torch.randn(n, c, generator=g, dtype=D)
        self.prec = [self.Xt.T @ self.Xt / s**2 + tau * torch.eye(k, dtype=D) for s in self.sigma]
        self.map = torch.stack([torch.linalg.solve(P, self.Xt.T @ self.y[:, j] / s**2
                                                   + tau * self.mu0[j])
                                for j, (P, s) in enumerate(zip(self.prec, self.sigma,
                                                               strict=True))])

    def as_params(self, w: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {"weight": w[:, : self.d].clone()}
        if self.bias:
            out["bias"] = w[:, self.d].clone()
        return out

    def flat_index(self, j: int) -> torch.Tensor:
        """Positions of channel j's [w_j, b_j] in the flat vector (weight [c, d], then bias)."""
        idx = list(range(j * self.d, (j + 1) * self.d))
        if self.bias:
            idx.append(self.c * self.d + j)
        return torch.tensor(idx)

    def dense_precision(self) -> torch.Tensor:
        P = self.c * self.Xt.shape[1]
        out = torch.zeros(P, P, dtype=D)
        for j in range(self.c):
            i = self.flat_index(j)
            out[i[:, None], i[None, :]] = self.prec[j]
        return out

    def evidence(self) -> float:
        k = self.Xt.shape[1]
        total = 0.0
        for j in range(self.c):
            cov = self.sigma[j] ** 2 * torch.eye(self.n, dtype=D) + self.Xt @ self.Xt.T / self.tau
            total += multivariate_normal(mean=(self.Xt @ self.mu0[j]).numpy(),
                                         cov=cov.numpy()).logpdf(self.y[:, j].numpy())
        assert k > 0
        return float(total)

    def fit(self, structure: str, **kw):
        kw.setdefault("noise_std", self.sigma if self.c > 1 else float(self.sigma[0]))
        kw.setdefault("prior_precision", self.tau)
        return fit_laplace(self.model, self.as_params(self.map), self.X, self.y,
                           prior_mean=self.as_params(self.mu0), structure=structure, **kw)


PROBLEMS = {
    "1-output": dict(),
    "2-outputs-bias-per-channel-noise": dict(c=2, bias=True, sigma=(0.3, 1.7), n=15),
}


@pytest.mark.parametrize("case", PROBLEMS)
@pytest.mark.parametrize("structure", ["full", "kron", "last-layer", "hessian"])
def test_linear_gaussian_posterior_and_evidence_are_exact(case, structure) -> None:
    """Tolerances: 1e-10 relative on matrices, 1e-8 relative on the evidence."""
    pb = LinearProblem(**PROBLEMS[case])
    post = pb.fit(structure)
    exact_prec = pb.dense_precision()
    torch.testing.assert_close(post.precision(), exact_prec, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(post.covariance(), torch.linalg.inv(exact_prec),
                               rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(post.ggn(), exact_prec - pb.tau * torch.eye(len(exact_prec),
                                                                           dtype=D),
                               rtol=1e-10, atol=1e-10)
    ev = pb.evidence()
    assert abs(float(post.log_marginal_likelihood()) - ev) <= 1e-8 * abs(ev)


@pytest.mark.parametrize("case", PROBLEMS)
def test_the_mode_is_the_exact_map_and_ggn_is_the_hessian(case) -> None:
    """The closed-form MAP zeroes the gradient of the log joint (≤ 1e-10), the
    posterior mean is that MAP, and GGN = NLL Hessian at any residual (≤ 1e-12)."""
    pb = LinearProblem(**PROBLEMS[case])
    post = pb.fit("full")
    phi = post.flat.flatten(pb.as_params(pb.map))
    torch.testing.assert_close(post.mean, phi, rtol=0, atol=0)
    grad = post.precision() @ (phi - post.prior_mean)
    f = pb.model
    rhs = torch.zeros_like(phi)
    resid = (pb.y - torch.func.functional_call(f, pb.as_params(pb.mu0), (pb.X,))) / pb.sigma**2
    for j in range(pb.c):
        rhs[pb.flat_index(j)] = pb.Xt.T @ resid[:, j]
    torch.testing.assert_close(grad, rhs, rtol=1e-10, atol=1e-10)
    params = pb.as_params(pb.map)
    ggn = curvature(f, params, pb.X, structure="full", noise_std=pb.sigma)
    hess = curvature(f, params, pb.X, pb.y, structure="hessian", noise_std=pb.sigma)
    torch.testing.assert_close(ggn, hess, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", PROBLEMS)
@pytest.mark.parametrize("structure", ["full", "kron"])
def test_predictive_variance_is_xt_sigma_x_and_chunking_changes_nothing(case, structure):
    """var_f[n, c] = x̃ᵀP_c⁻¹x̃, var_y = var_f + σ_c² (≤ 1e-10 rel); chunk 1/4 = chunk 1000."""
    pb = LinearProblem(**PROBLEMS[case])
    post = pb.fit(structure)
    xq = torch.randn(9, pb.d, generator=_gen(5), dtype=D)
    xqt = torch.cat([xq, torch.ones(9, 1, dtype=D)], 1) if pb.bias else xq
    exact = torch.stack([((xqt @ torch.linalg.inv(P)) * xqt).sum(1) for P in pb.prec], 1)
    full = post.predict(xq, chunk_size=1000)
    torch.testing.assert_close(full.var_f, exact, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(full.var_y, exact + pb.sigma**2, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(full.mean, torch.func.functional_call(
        pb.model, pb.as_params(pb.map), (xq,)), rtol=1e-12, atol=1e-12)
    for k in (1, 4):
        part = post.predict(xq, chunk_size=k)
        torch.testing.assert_close(part.var_f, full.var_f, rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(part.mean, full.mean, rtol=0, atol=1e-15)


def test_evidence_optimum_satisfies_mackay_fixed_points() -> None:
    """At the maximiser of log Z (φ fixed): τ‖φ − θ‖² = P − τ tr Σ and
    σ_c² = (RSS_c + tr(Σ GGN_c)) / N, GGN_c the unit-noise curvature (≤ 1e-6 rel).
    K-FAC is exact for one Linear layer, so 'kron' reaches the same optimum."""
    pb = LinearProblem(**PROBLEMS["2-outputs-bias-per-channel-noise"])
    post = pb.fit("full", optimize="both")
    tau = float(post.prior_precision[0])
    sigma = post.noise_std
    cov = post.covariance()
    delta = post.mean - post.prior_mean
    P = post.flat.numel
    assert tau * float(delta @ delta) == pytest.approx(P - tau * float(torch.trace(cov)),
                                                       rel=1e-6)
    for j in range(pb.c):
        rss = float(post.sq_residual[j])
        tr = float(torch.trace(cov @ post.curv[j]))
        assert float(sigma[j]) ** 2 == pytest.approx((rss + tr) / pb.n, rel=1e-6)
    kron = pb.fit("kron", optimize="both")
    torch.testing.assert_close(kron.noise_std, post.noise_std, rtol=1e-6, atol=0)
    torch.testing.assert_close(kron.prior_precision, post.prior_precision, rtol=1e-6, atol=0)
    assert float(kron.log_marginal_likelihood()) >= float(pb.fit("kron").log_marginal_likelihood())


def test_inner_loop_lands_on_the_map_of_the_early_stopping_prior() -> None:
    """K MAML inner steps of size β from θ on the MSE support loss
    L(w) = (1/N)‖Xw − y‖² (exactly quadratic, H = 2XᵀX/N) equal the MAP of
    L + ½(φ − θ)ᵀQ⁻¹(φ − θ), Q⁻¹ = prior_from_inner_loop(H, β, K) (≤ 1e-10).

    Scaling to a Gaussian likelihood: NLL = Σ(y − Xw)²/(2σ²) = N/(2σ²)·L, so the
    prior precision to pair with it is Λ = N/(2σ²)·Q⁻¹ (inner_loop_prior); with it
    the Laplace posterior at φ_K is exact Bayesian linear regression: its mode
    condition holds and log Z is the exact evidence log N(y; Xθ, σ²I + XΛ⁻¹Xᵀ).
    """
    n, d, beta, K, sigma = 10, 3, 0.1, 4, 0.5
    g = _gen(3)
    X = torch.randn(n, d, generator=g, dtype=D)
    y = X @ torch.randn(d, 1, generator=g, dtype=D) + 0.3 * torch.randn(n, 1, generator=g,
                                                                        dtype=D)
    learner = MAML(nn.Linear(d, 1, bias=False).double(), inner_lr=beta, inner_steps=K)
    theta = learner.init_params()
    phi = learner.inner_loop(theta, X, y)
    w0 = theta["weight"].detach().reshape(-1)
    wk = phi["weight"].detach().reshape(-1)
    H = 2 * X.T @ X / n
    assert float(torch.linalg.eigvalsh(beta * H).max()) < 1
    Qinv = prior_from_inner_loop(H, beta, K)
    map_ = torch.linalg.solve(H + Qinv, 2 * X.T @ y[:, 0] / n + Qinv @ w0)
    torch.testing.assert_close(wk, map_, rtol=1e-10, atol=1e-12)

    Lam = inner_loop_prior(learner, theta, X, y, noise_std=sigma)
    torch.testing.assert_close(Lam, n / (2 * sigma**2) * Qinv, rtol=1e-10, atol=1e-12)
    post = fit_laplace(learner, phi, X, y, prior_mean=theta, structure="full",
                       prior_precision=Lam, noise_std=sigma)
    torch.testing.assert_close(post.precision() @ (wk - w0), X.T @ (y[:, 0] - X @ w0) / sigma**2,
                               rtol=1e-9, atol=1e-10)
    cov = sigma**2 * torch.eye(n, dtype=D) + X @ torch.linalg.solve(Lam, X.T)
    ev = multivariate_normal(mean=(X @ w0).numpy(), cov=cov.numpy()).logpdf(y[:, 0].numpy())
    assert abs(float(post.log_marginal_likelihood()) - ev) <= 1e-8 * abs(ev)


def test_early_stopping_prior_rules_for_nonpositive_and_large_curvature() -> None:
    """βλ < 1 with λ < 0 and λ = 0 still reproduces the K-step iterate (≤ 1e-10);
    βλ >= 1 gets min_precision; no step is refused."""
    g = _gen(4)
    rot, _ = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=D))
    lam = torch.tensor([-0.5, 0.0, 0.3, 2.0], dtype=D)
    H = rot @ torch.diag(lam) @ rot.T
    beta, K = 0.4, 3
    theta, star = torch.randn(4, generator=g, dtype=D), torch.randn(4, generator=g, dtype=D)
    phi = theta.clone()
    for _ in range(K):
        phi = phi - beta * H @ (phi - star)
    Qinv = prior_from_inner_loop(H, beta, K)
    torch.testing.assert_close(torch.linalg.solve(H + Qinv, H @ star + Qinv @ theta), phi,
                               rtol=1e-10, atol=1e-10)
    zero_dir = rot[:, 1]
    assert float(zero_dir @ Qinv @ zero_dir) == pytest.approx(1 / (K * beta), rel=1e-9)
    big = prior_from_inner_loop(torch.diag(torch.tensor([3.0, 1.0], dtype=D)), beta, K,
                                min_precision=0.7)
    assert float(big[0, 0]) == pytest.approx(0.7, rel=1e-12)
    assert float(big[1, 1]) == pytest.approx(1.0 / ((1 - beta) ** -K - 1), rel=1e-12)
    with pytest.raises(ConfigError, match="inner_steps"):
        prior_from_inner_loop(H, beta, 0)


def test_non_positive_definite_precision_raises_or_jitters(caplog) -> None:
    """More parameters than points and τ = 0: the GGN is singular. Default: a
    ConfigError naming prior_precision; jitter > 0: jitter·I added, a warning logged."""
    pb = LinearProblem(n=3, d=5, tau=1.0)
    pb.X[:, -1] = 0.0                       # a weight the data do not see: zero curvature
    args = (pb.model, pb.as_params(pb.map), pb.X, pb.y)
    for structure in ("full", "diag", "kron"):
        with pytest.raises(ConfigError, match="prior_precision"):
            fit_laplace(*args, structure=structure, prior_precision=0.0)
    with caplog.at_level(logging.WARNING, logger="scimeta.bayes"):
        post = fit_laplace(*args, structure="full", prior_precision=0.0, jitter=1e-6)
    assert post.jitter == 1e-6 and "jitter" in caplog.text
    assert bool(torch.all(torch.linalg.eigvalsh(post.precision()) > 0))
    with pytest.raises(ConfigError, match="proper prior"):
        post.log_marginal_likelihood()


def test_bad_arguments_name_the_fix() -> None:
    pb = LinearProblem()
    with pytest.raises(ConfigError, match="valid structures: full, diag, kron, last-layer"):
        pb.fit("kfac")
    with pytest.raises(ConfigError, match="noise_std"):
        pb.fit("full", noise_std=-1.0)
    with pytest.raises(ConfigError, match="optimize"):
        pb.fit("full", optimize="everything")
    with pytest.raises(ConfigError, match="lacks"):
        fit_laplace(pb.model, pb.as_params(pb.map), pb.X, pb.y, prior_precision={"bias": 1.0})


def test_the_docs_example_runs() -> None:
    """docs/bayes.md's Python blocks run as written."""
    text = (ROOT / "docs" / "bayes.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)
    assert blocks
    for code in blocks:
        ns: dict = {"__name__": "__docs__"}
        exec(compile(code, "docs/bayes.md", "exec"), ns)
        assert np.isfinite(float(ns["post"].log_marginal_likelihood()))
