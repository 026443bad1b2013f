"""Curvature structures against their dense definitions on a 1-4-4-2 tanh MLP (float64).

References are computed independently of scimeta.bayes: a hand-written forward pass
of the flat parameter vector (model order, row-major) differentiated with
``torch.autograd.functional``. Tolerances: 1e-12 absolute on curvatures (entries
O(1..100)), 1e-10 relative on covariances, variances and log Z.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.autograd.functional import hessian, jacobian

from scimeta.bayes import curvature, fit_laplace
from scimeta.errors import ConfigError
from scimeta.meta import ANIL

D = torch.float64
SIGMA = torch.tensor([0.5, 1.3], dtype=D)
#: (weight offset, in, out) per layer in the flat vector; bias follows its weight
LAYERS = [(0, 1, 4), (8, 4, 4), (28, 4, 2)]
P = 38


pytestmark = pytest.mark.usefixtures("one_thread")


def _mlp() -> tuple[nn.Module, dict, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, 4), nn.Tanh(), nn.Linear(4, 4), nn.Tanh(),
                          nn.Linear(4, 2)).double()
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    vec = torch.cat([v.reshape(-1) for v in params.values()])
    return model, params, vec


def _forward(vec, x, deltas=None):
    """The MLP by hand; ``deltas`` are offsets added to each layer's pre-activation."""
    h, acts = x, []
    for k, (o, i, n) in enumerate(LAYERS):
        W, b = vec[o:o + n * i].reshape(n, i), vec[o + n * i:o + n * i + n]
        acts.append(h)
        s = h @ W.T + b + (0 if deltas is None else deltas[k])
        h = torch.tanh(s) if k < len(LAYERS) - 1 else s
    return h, acts


def _data(n=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 1, generator=g, dtype=D) * 2,
            torch.randn(n, 2, generator=g, dtype=D))


def _dense_ggn(vec, x):
    J = jacobian(lambda v: _forward(v, x)[0], vec)           # [N, C, P]
    return torch.einsum("ncp,c,ncq->pq", J, 1 / SIGMA**2, J)


def _blocks(n):
    """Flat positions and [W | b] positions of a layer (o, i, n_out)."""
    o, i, m = LAYERS[n]
    flat = list(range(o, o + m * i + m))
    aug = [r * (i + 1) + c for r in range(m) for c in range(i)] + [r * (i + 1) + i
                                                                  for r in range(m)]
    return torch.tensor(flat), torch.tensor(aug)


def _kfac_dense(vec, x):
    """K-FAC by definition: A = mean ā āᵀ, G = Σ_n Σ_c g gᵀ/σ_c², block G ⊗ A."""
    out = torch.zeros(P, P, dtype=D)
    zeros = [torch.zeros(n, dtype=D) for _, _, n in LAYERS]
    per_point = []
    for xn in x:
        _, acts = _forward(vec, xn[None])
        gs = jacobian(lambda *d, xn=xn: _forward(vec, xn[None], d)[0][0], tuple(zeros))
        per_point.append(([a[0] for a in acts], gs))           # gs[l]: [C, out_l]
    for k in range(len(LAYERS)):
        A = sum(torch.outer(torch.cat([a[k], a[k].new_ones(1)]),
                            torch.cat([a[k], a[k].new_ones(1)])) for a, _ in per_point) / len(x)
        G = sum(torch.einsum("co,c,cp->op", g[k], 1 / SIGMA**2, g[k]) for _, g in per_point)
        fi, ai = _blocks(k)
        out[fi[:, None], fi[None, :]] = torch.kron(G, A)[ai[:, None], ai[None, :]]
    return out


def _layer_mask():
    mask = torch.zeros(P, P, dtype=torch.bool)
    for k in range(len(LAYERS)):
        fi, _ = _blocks(k)
        mask[fi[:, None], fi[None, :]] = True
    return mask


def test_full_diag_lastlayer_hessian_equal_their_dense_definitions() -> None:
    model, params, vec = _mlp()
    x, y = _data()
    ggn = _dense_ggn(vec, x)
    kw = dict(noise_std=SIGMA)
    torch.testing.assert_close(curvature(model, params, x, structure="full", **kw), ggn,
                               rtol=0, atol=1e-12)
    torch.testing.assert_close(curvature(model, params, x, structure="diag", chunk_size=4, **kw),
                               torch.diagonal(ggn), rtol=0, atol=1e-12)
    torch.testing.assert_close(curvature(model, params, x, structure="last-layer", **kw),
                               ggn[28:, 28:], rtol=0, atol=1e-12)
    nll = hessian(lambda v: ((y - _forward(v, x)[0]).square() / (2 * SIGMA**2)).sum(), vec)
    torch.testing.assert_close(curvature(model, params, x, y, structure="hessian", **kw), nll,
                               rtol=0, atol=1e-12)
    y0 = _forward(vec, x)[0].detach()                       # zero residual: Hessian = GGN
    torch.testing.assert_close(curvature(model, params, x, y0, structure="hessian", **kw), ggn,
                               rtol=0, atol=1e-12)


def test_kron_is_exact_for_one_point_and_kfac_for_several() -> None:
    model, params, vec = _mlp()
    x, _ = _data()
    one = curvature(model, params, x[:1], structure="kron", noise_std=SIGMA).to_dense()
    exact = torch.where(_layer_mask(), _dense_ggn(vec, x[:1]), torch.zeros((), dtype=D))
    torch.testing.assert_close(one, exact, rtol=0, atol=1e-12)
    several = curvature(model, params, x, structure="kron", noise_std=SIGMA, chunk_size=4)
    torch.testing.assert_close(several.to_dense(), _kfac_dense(vec, x), rtol=0, atol=1e-12)
    assert [L.A.shape[-1] for L in several.layers] == [2, 5, 5]
    assert [L.G.shape[-1] for L in several.layers] == [4, 4, 2]


@pytest.mark.parametrize("structure", ["full", "diag", "kron", "last-layer", "hessian"])
def test_batched_over_tasks_equals_one_task_at_a_time(structure) -> None:
    model, params, _ = _mlp()
    B = 3
    g = torch.Generator().manual_seed(2)
    pb = {k: v + 0.3 * torch.randn(B, *v.shape, generator=g, dtype=D) for k, v in params.items()}
    xb, yb = torch.randn(B, 5, 1, generator=g, dtype=D), torch.randn(B, 5, 2, generator=g,
                                                                      dtype=D)
    out = curvature(model, pb, xb, yb, structure=structure, noise_std=SIGMA, batched=True,
                    chunk_size=2)
    for b in range(B):
        one = curvature(model, {k: v[b] for k, v in pb.items()}, xb[b], yb[b],
                        structure=structure, noise_std=SIGMA)
        if structure == "kron":
            torch.testing.assert_close(out.to_dense()[b], one.to_dense(), rtol=0, atol=1e-12)
        else:
            torch.testing.assert_close(out[b], one, rtol=0, atol=1e-12)


def _posterior(structure, **kw):
    model, params, vec = _mlp()
    x, y = _data()
    theta = {k: v + 0.1 for k, v in params.items()}
    kw.setdefault("prior_precision", 2.0)
    return fit_laplace(model, params, x, y, prior_mean=theta, structure=structure,
                       noise_std=SIGMA, **kw), vec, x, y


@pytest.mark.parametrize("structure", ["full", "diag", "kron", "last-layer"])
def test_posterior_factor_predictive_evidence_and_samples_match_dense(structure) -> None:
    """Tᵀ T = Σ = precision⁻¹; var_f = diag(J Σ Jᵀ) (any chunking); log Z from the dense
    precision; draws = φ + z T with the same generator (all ≤ 1e-10 relative)."""
    post, vec, x, y = _posterior(structure)
    T = torch.cat(list(post.sqrt_covariance().chunks(7)))
    cov = torch.linalg.inv(post.precision())
    torch.testing.assert_close(T.T @ T, cov, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(post.covariance(), cov, rtol=1e-10, atol=1e-12)
    xq = torch.linspace(-3, 3, 11, dtype=D)[:, None]
    J = jacobian(lambda v: _forward(v, xq)[0], vec)
    cols = slice(28, P) if structure == "last-layer" else slice(0, P)
    exact = torch.einsum("ncp,pq,ncq->nc", J[..., cols], cov, J[..., cols])
    for k in (3, 1000):
        pred = post.predict(xq, chunk_size=k)
        torch.testing.assert_close(pred.var_f, exact, rtol=1e-10, atol=1e-14)
        torch.testing.assert_close(pred.var_y, exact + SIGMA**2, rtol=1e-10, atol=1e-14)
    d = post.mean - post.prior_mean
    lam = post.prior.dense()
    dense_logz = (-0.5 * (len(x) * torch.log(2 * math.pi * SIGMA**2)
                          + (y - _forward(vec, x)[0]).square().sum(0) / SIGMA**2).sum()
                  + 0.5 * (torch.logdet(lam) - d @ lam @ d) - 0.5 * torch.logdet(post.precision()))
    got = float(post.log_marginal_likelihood())
    assert got == pytest.approx(float(dense_logz), rel=1e-10)
    draws = post.sample(4, generator=torch.Generator().manual_seed(7))
    z = torch.randn(4, T.shape[0], generator=torch.Generator().manual_seed(7), dtype=D)
    torch.testing.assert_close(post.flat.flatten(draws), post.mean + z @ T, rtol=0, atol=1e-12)


def test_per_tensor_prior_optimum_is_stationary() -> None:
    """Fitting one prior scale per tensor (noise fixed): at the optimum each group g has
    τ_g‖δ_g‖² = P_g − τ_g tr_g Σ (MacKay; ≤ 1e-6 relative), and log Z did not decrease."""
    _, params, _ = _mlp()
    start = {k: 1.0 for k in params}
    post, *_ = _posterior("full", prior_precision=start)
    best = post.optimize("prior")
    assert float(best.log_marginal_likelihood()) >= float(post.log_marginal_likelihood())
    cov, d = best.covariance(), best.mean - best.prior_mean
    for name in params:
        s = best.flat.slice(name)
        tau = float(best.prior_precision[s][0])
        lhs = tau * float(d[s] @ d[s])
        rhs = (s.stop - s.start) - tau * float(torch.diagonal(cov)[s].sum())
        assert lhs == pytest.approx(rhs, rel=1e-6, abs=1e-9)


def test_learner_names_default_to_the_adapted_parameters() -> None:
    model, params, vec = _mlp()
    x, y = _data()
    learner = ANIL(model, inner_lr=0.1, inner_steps=1)
    post = fit_laplace(learner, params, x, y, structure="full", noise_std=SIGMA)
    assert post.flat.names == ("4.weight", "4.bias")
    torch.testing.assert_close(post.ggn(), _dense_ggn(vec, x)[28:, 28:], rtol=0, atol=1e-12)


def test_kron_refuses_what_it_does_not_cover() -> None:
    torch.manual_seed(0)
    bn = nn.Sequential(nn.Linear(1, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 2)).double()
    p = {k: v.detach() for k, v in bn.named_parameters()}
    x, y = _data()
    with pytest.raises(ConfigError, match="training mode"):
        fit_laplace(bn, p, x, y, structure="full")
    bn.eval()
    with pytest.raises(ConfigError, match=r"'1\.weight' \(BatchNorm1d\) is not covered"):
        fit_laplace(bn, p, x, y, structure="kron")
    fit_laplace(bn, p, x, y, structure="diag")              # fine point-wise in eval mode

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)

        def forward(self, x):
            return self.lin(torch.tanh(self.lin(x)))

    tw = Twice().double()
    with pytest.raises(ConfigError, match="more than once"):
        curvature(tw, dict(tw.named_parameters()), torch.ones(3, 2, dtype=D), structure="kron")
    model, params, _ = _mlp()
    per = {k: (2.0 if k.endswith("weight") else 1.0) for k in params}
    with pytest.raises(ConfigError, match=r"one prior precision per nn\.Linear layer"):
        fit_laplace(model, params, x, y, structure="kron", prior_precision=per)
    with pytest.raises(ConfigError, match="diagonal prior"):
        fit_laplace(model, params, x, y, structure="diag",
                    prior_precision=torch.eye(P, dtype=D))
