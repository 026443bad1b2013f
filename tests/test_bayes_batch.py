"""The batched K-FAC path (fit_kron_batch) against the per-task one, float64.

fit_kron_batch over B tasks must equal fit_laplace(structure="kron") + predict task by
task, and its evidence fit must equal scimeta.bayes._hyper.fit_hyper on the per-task
list, to 1e-10 relative. Two widths: hidden 4 with 5 points (G and A decomposed
directly) and hidden 8 with 3 points (N·C < out and N < w: the Gram-matrix spectra).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from scimeta.bayes import fit_kron_batch, fit_laplace
from scimeta.bayes._hyper import fit_hyper
from scimeta.errors import ConfigError
from scimeta.meta import ANIL

D = torch.float64
SIGMA = [0.5, 1.3]
TOL = {"rtol": 1e-10, "atol": 0.0}


pytestmark = pytest.mark.usefixtures("one_thread")


def _case(hidden: int, n: int, B: int = 3):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, hidden), nn.Tanh(), nn.Linear(hidden, hidden),
                          nn.Tanh(), nn.Linear(hidden, 2)).double()
    theta = {k: v.detach().clone() for k, v in model.named_parameters()}
    g = torch.Generator().manual_seed(1)
    phi = {k: v + 0.2 * torch.randn(B, *v.shape, generator=g, dtype=D) for k, v in theta.items()}
    x = 2 * torch.randn(B, n + 7, 1, generator=g, dtype=D)
    y = torch.cat([torch.sin(x), torch.cos(x)], -1) + 0.1 * torch.randn(B, n + 7, 2,
                                                                         generator=g, dtype=D)
    return model, theta, phi, x[:, :n], y[:, :n], x[:, n:]


def _per_task(model, theta, phi, xs, ys, tau, **kw):
    return [fit_laplace(model, {k: v[t] for k, v in phi.items()}, xs[t], ys[t],
                        prior_mean=theta, structure="kron", prior_precision=float(tau[t]),
                        noise_std=SIGMA, **kw) for t in range(xs.shape[0])]


@pytest.mark.parametrize(("hidden", "n"), [(4, 5), (8, 3)])
@pytest.mark.parametrize("jitter", [0.0, 0.3])
def test_batched_fit_evidence_and_predictive_equal_the_per_task_loop(hidden, n, jitter) -> None:
    model, theta, phi, xs, ys, xq = _case(hidden, n)
    tau = torch.tensor([0.5, 2.0, 7.0], dtype=D)
    batch = fit_kron_batch(model, phi, xs, ys, prior_mean=theta, prior_precision=tau,
                           noise_std=SIGMA)
    posts = _per_task(model, theta, phi, xs, ys, tau)
    if jitter:
        batch = replace(batch, jitter=jitter)
        posts = [replace(p, jitter=jitter) for p in posts]
    torch.testing.assert_close(batch.log_marginal_likelihood(),
                               torch.stack([p.log_marginal_likelihood() for p in posts]), **TOL)
    for chunk in (None, 3):
        pred = batch.predict(xq, chunk_size=chunk)
        for t, p in enumerate(posts):
            ref = p.predict(xq[t])
            torch.testing.assert_close(pred.mean[t], ref.mean, rtol=0, atol=1e-14)
            torch.testing.assert_close(pred.var_f[t], ref.var_f, **TOL)
            torch.testing.assert_close(pred.var_y[t], ref.var_y, **TOL)
    for t, p in enumerate(posts):  # the per-task view holds the same factors
        one = batch.posterior(t)
        torch.testing.assert_close(one.precision(), p.precision(), rtol=0, atol=1e-12)
        torch.testing.assert_close(one.log_marginal_likelihood(), p.log_marginal_likelihood(),
                                   **TOL)


@pytest.mark.parametrize(("hidden", "n"), [(4, 5), (8, 3)])
def test_batched_evidence_fit_equals_fit_hyper_on_the_per_task_list(hidden, n) -> None:
    model, theta, phi, xs, ys, xq = _case(hidden, n, B=4)
    batch = fit_kron_batch(model, phi, xs, ys, prior_mean=theta, prior_precision=1.0,
                           noise_std=SIGMA, optimize=True)
    posts = _per_task(model, theta, phi, xs, ys, torch.ones(4, dtype=D))
    s2, ls = fit_hyper(posts)
    torch.testing.assert_close(batch.noise_var, s2, **TOL)
    torch.testing.assert_close(batch.tau, torch.exp(ls), **TOL)
    posts = [replace(p, noise_var=s2, prior=p.prior.rescaled(ls[t:t + 1]))
             for t, p in enumerate(posts)]
    torch.testing.assert_close(batch.log_marginal_likelihood(),
                               torch.stack([p.log_marginal_likelihood() for p in posts]), **TOL)
    pred = batch.predict(xq)
    for t, p in enumerate(posts):
        torch.testing.assert_close(pred.var_f[t], p.predict(xq[t]).var_f, **TOL)
    fixed = replace(batch, noise_var=batch.noise_var * 2).fit_hyper(fit_noise=False)
    torch.testing.assert_close(fixed.noise_var, batch.noise_var * 2, rtol=0, atol=0)


def test_batched_bad_input_names_the_fix() -> None:
    model, _, phi, xs, ys, xq = _case(4, 5)
    with pytest.raises(ConfigError, match="prior_precision"):
        fit_kron_batch(model, phi, xs, ys, prior_precision=0.0)
    with pytest.raises(ConfigError, match=r"\[B, N, d_in\]"):
        fit_kron_batch(model, phi, xs[0], ys[0])
    with pytest.raises(ConfigError, match="B=3"):
        fit_kron_batch(model, phi, xs, ys).predict(xq[:2])


def test_learner_names_default_to_the_adapted_parameters() -> None:
    model, theta, phi, xs, ys, xq = _case(4, 5)
    learner = ANIL(model, inner_lr=0.1, inner_steps=1)
    batch = fit_kron_batch(learner, phi, xs, ys, prior_mean=theta, noise_std=SIGMA)
    assert batch.flat.names == ("4.weight", "4.bias")
    ref = fit_kron_batch(model, phi, xs, ys, prior_mean=theta, noise_std=SIGMA,
                         names=["4.weight", "4.bias"])
    torch.testing.assert_close(batch.predict(xq).var_f, ref.predict(xq).var_f, rtol=0, atol=0)
    one = fit_laplace(learner, {k: v[1] for k, v in phi.items()}, xs[1], ys[1],
                      prior_mean=theta, structure="kron", noise_std=SIGMA)
    torch.testing.assert_close(batch.predict(xq).var_f[1], one.predict(xq[1]).var_f, **TOL)
