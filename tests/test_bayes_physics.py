"""The physics residual as an observation block of the Laplace likelihood (float64).

Linear model u(t) = W t + b (W ``[2, 1]``, b ``[2]``; flat φ = (W₀, W₁, b₀, b₁)) and the
damped driven oscillator residual r = dy/dt − rhs(t, y): affine in φ,

  r₀ = W₀ − (W₁ t + b₁),                                rows [1, −t, 0, −1],
  r₁ = W₁ + 2ζω₀(W₁ t + b₁) + ω₀²(W₀ t + b₀) − F cos(Ωt),
                                      rows [ω₀² t, 1 + 2ζω₀ t, ω₀², 2ζω₀], const −F cos Ωt,

each divided by the loss's scale s_c. Observing r = 0 with precision λ is observing
−const = Rφ: Bayesian linear regression on the data rows and the residual rows together
gives the exact posterior and evidence, which the Laplace block must reproduce.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from torch import nn

from scimeta.bayes import fit_laplace
from scimeta.errors import ConfigError
from scimeta.meta import MAML, PhysicsLoss

D = torch.float64
P_TASK = torch.tensor([1.3, 0.2, 0.5, 0.9], dtype=D)       # omega0, zeta, F, Omega
SCALE = torch.tensor([2.0, 3.0], dtype=D)


pytestmark = pytest.mark.usefixtures("one_thread")


def _problem(lam=4.0, tau=0.7, sigma=(0.2, 0.4), n=7, m=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0.0, 3.0, n, dtype=D)
    tc = torch.linspace(0.1, 2.9, m, dtype=D)
    y = torch.stack([torch.sin(t), torch.cos(t)], 1) + 0.1 * torch.randn(n, 2, generator=g,
                                                                         dtype=D)
    s = torch.tensor(sigma, dtype=D)
    w0, z, F, Om = P_TASK
    rows, targets, prec = [], [], []
    for tn, yn in zip(t, y, strict=True):                      # data rows (n, c)
        rows += [[tn, 0.0, 1.0, 0.0], [0.0, tn, 0.0, 1.0]]
        targets += [yn[0], yn[1]]
        prec += [1 / s[0] ** 2, 1 / s[1] ** 2]
    for tm in tc:                                              # residual rows (m, c)
        rows += [[1 / SCALE[0], -tm / SCALE[0], 0.0, -1 / SCALE[0]],
                 [w0**2 * tm / SCALE[1], (1 + 2 * z * w0 * tm) / SCALE[1],
                  w0**2 / SCALE[1], 2 * z * w0 / SCALE[1]]]
        targets += [0.0, F * torch.cos(Om * tm) / SCALE[1]]
        prec += [lam, lam]
    A = torch.tensor([[float(v) for v in r] for r in rows], dtype=D)
    b = torch.tensor([float(v) for v in targets], dtype=D)
    W = torch.tensor([float(v) for v in prec], dtype=D)
    mu0 = torch.randn(4, generator=g, dtype=D)
    H = A.T @ (W[:, None] * A) + tau * torch.eye(4, dtype=D)
    phi = torch.linalg.solve(H, A.T @ (W * b) + tau * mu0)
    cov = torch.diag(1 / W) + A @ A.T / tau
    evidence = multivariate_normal(A.numpy() @ mu0.numpy(), cov.numpy()).logpdf(b.numpy())
    return dict(t=t, tc=tc, y=y, s=s, lam=lam, tau=tau, mu0=mu0, H=H, phi=phi,
                evidence=evidence, n=n, m=m)


def _as_params(v: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"weight": v[:2].reshape(2, 1).clone(), "bias": v[2:].clone()}


def _fit(pb, model=None, **kw):
    model = model if model is not None else nn.Linear(1, 2).double()
    kw.setdefault("physics", PhysicsLoss("oscillator", scale=SCALE))
    return fit_laplace(model, _as_params(pb["phi"]), pb["t"][:, None], pb["y"],
                       prior_mean=_as_params(pb["mu0"]), prior_precision=pb["tau"],
                       noise_std=pb["s"], collocation_x=pb["tc"][:, None], task_params=P_TASK,
                       physics_precision=pb["lam"], **kw)


@pytest.mark.parametrize("structure", ["full", "hessian", "diag"])
def test_physics_block_is_exact_for_an_affine_residual(structure):
    pb = _problem()
    post = _fit(pb, structure=structure, chunk_size=2)
    want = pb["H"] if structure != "diag" else torch.diag(torch.diagonal(pb["H"]))
    torch.testing.assert_close(post.precision(), want, rtol=1e-12, atol=1e-12)
    if structure != "diag":
        lz = float(post.log_marginal_likelihood())
        assert abs(lz - pb["evidence"]) <= 1e-8 * abs(pb["evidence"])
        torch.testing.assert_close(post.covariance(), torch.linalg.inv(pb["H"]), rtol=1e-10,
                                   atol=1e-14)
    without = fit_laplace(nn.Linear(1, 2).double(), _as_params(pb["phi"]), pb["t"][:, None],
                          pb["y"], prior_mean=_as_params(pb["mu0"]), prior_precision=pb["tau"],
                          noise_std=pb["s"], structure=structure)
    assert float(torch.diagonal(post.precision() - without.precision()).min()) > 0.1


def test_learner_physics_and_the_loss_weight_correspondence():
    """The learner's inner physics term is used by default; with λ = N·C·w/(σ² M C_r) and
    one σ, the closed-form MAP is the minimum of s·support_loss + ½τ‖φ − μ₀‖²,
    s = N·C/(2σ²) (the gradient vanishes there)."""
    w, sigma = 0.3, 0.25
    pb0 = _problem()
    lam = pb0["n"] * 2 * w / (sigma**2 * pb0["m"] * 2)
    pb = _problem(lam=lam, sigma=(sigma, sigma))
    physics = PhysicsLoss("oscillator", weight=w, where="inner", scale=SCALE)
    learner = MAML(nn.Linear(1, 2).double(), inner_lr=0.01, inner_steps=1, physics=physics)
    post = _fit(pb, model=learner, physics=None, structure="full")
    torch.testing.assert_close(post.precision(), pb["H"], rtol=1e-12, atol=1e-12)
    phi = {k: v.requires_grad_(True) for k, v in _as_params(pb["phi"]).items()}
    mu0 = _as_params(pb["mu0"])
    s = pb["n"] * 2 / (2 * sigma**2)
    obj = s * learner.support_loss(phi, pb["t"][:, None], pb["y"], pb["tc"][:, None], P_TASK) \
        + 0.5 * pb["tau"] * sum((phi[k] - mu0[k]).square().sum() for k in phi)
    grads = torch.autograd.grad(obj, list(phi.values()))
    assert max(float(g.abs().max()) for g in grads) <= 1e-10


def test_evidence_fit_with_physics_keeps_the_block():
    """optimize='noise': MacKay's σ_c² = (RSS_c + tr(Σ GGN_c))/N holds with the physics
    block in Σ; the block itself stays fixed."""
    pb = _problem(seed=1)
    post = _fit(pb, structure="full", optimize="noise")
    cov = post.covariance()
    tr = torch.einsum("pq,cqp->c", cov, post.curv)
    torch.testing.assert_close(post.noise_var, (post.sq_residual + tr) / pb["n"], rtol=1e-6,
                               atol=0)
    base = _fit(pb, structure="full")
    torch.testing.assert_close(post.physics_prec, base.physics_prec, rtol=0, atol=0)


def test_physics_bad_input():
    pb = _problem()
    with pytest.raises(ConfigError, match=r"physics_precision=None is not allowed; give λ > 0"):
        fit_laplace(nn.Linear(1, 2).double(), _as_params(pb["phi"]), pb["t"][:, None], pb["y"],
                    structure="full", collocation_x=pb["tc"][:, None], task_params=P_TASK,
                    physics=PhysicsLoss("oscillator"))
    with pytest.raises(ConfigError, match=r"structure='kron' is not allowed with a physics"):
        _fit(pb, structure="kron")
    with pytest.raises(ConfigError, match="there is no physics residual"):
        _fit(pb, physics=None, structure="full")
    with pytest.raises(ConfigError, match="needs task_params"):
        fit_laplace(nn.Linear(1, 2).double(), _as_params(pb["phi"]), pb["t"][:, None], pb["y"],
                    structure="full", collocation_x=pb["tc"][:, None],
                    physics=PhysicsLoss("oscillator"), physics_precision=1.0)
    assert np.isfinite(float(_fit(pb, structure="full").log_marginal_likelihood()))
