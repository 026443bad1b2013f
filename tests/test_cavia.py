"""CAVIA (context adaptation) against a hand-written inner loop and finite differences
(float64): the inner loop moves the context vector only; the second-order
meta-gradient, on the hand-batched path and on the ``torch.func`` one, equals a
plain-autograd reference to 1e-12 and central finite differences to 1e-6 relative; a
model without a context is refused by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_meta_variants import batch_of, fd_directional, grads_of

from scimeta.errors import ConfigError
from scimeta.meta import get_learner
from scimeta.meta._fast import SequentialPlan
from scimeta.nn import CoordinateMLP, Rescaled

DT = torch.float64


def model_with_context(rescaled=False):
    torch.manual_seed(0)
    m = CoordinateMLP(1, 2, hidden=(6, 5), context_dim=3).to(DT)
    with torch.no_grad():
        m.context.normal_()  # a trained starting value, not zeros
    if rescaled:
        m = Rescaled(m, [-1.0], [2.0], [0.1, 0.2], [1.5, 0.5], dtype=DT)
    return m


def test_context_enters_the_first_layer_beside_the_inputs():
    m = model_with_context()
    x = torch.randn(4, 1, dtype=DT)
    want = m.net(torch.cat([x, m.context.expand(4, 3)], dim=-1))
    assert torch.allclose(m(x), want, rtol=0, atol=1e-15)
    assert m.net[0].in_features == 1 + 3 and next(iter(dict(m.named_parameters()))) == "context"


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("rescaled", [False, True])
def test_cavia_adapts_the_context_only_and_matches_a_manual_meta_gradient(rescaled, fast):
    model, batch = model_with_context(rescaled), batch_of(n_tasks=3)
    cavia = get_learner("cavia").build(model, inner_lr=0.3, inner_steps=2, fast=fast)
    name = "net.context" if rescaled else "context"
    assert cavia.adapted == [name]
    assert isinstance(cavia._fast, SequentialPlan) if fast else cavia._fast is None
    p = cavia.init_params()
    phi = cavia.adapt(p, batch.support_x[0], batch.support_y[0])
    assert all(torch.equal(phi[n], p[n]) for n in p if n != name)
    assert not torch.equal(phi[name], p[name])
    _, g = grads_of(cavia, p, batch)
    total = 0.0
    for i in range(3):
        c = p[name]
        for _ in range(2):
            pred = torch.func.functional_call(model, {**p, name: c}, (batch.support_x[i],))
            gc, = torch.autograd.grad(((pred - batch.support_y[i]) ** 2).mean(), c,
                                      create_graph=True)
            c = c - 0.3 * gc
        pred = torch.func.functional_call(model, {**p, name: c}, (batch.query_x[i],))
        total = total + ((pred - batch.query_y[i]) ** 2).mean() / 3
    manual = torch.autograd.grad(total, list(p.values()))
    for n, want in zip(p, manual, strict=True):
        assert torch.allclose(g[n], want, rtol=1e-12, atol=1e-14), n
    gen = torch.Generator().manual_seed(2)
    v = {k: torch.randn(t.shape, generator=gen, dtype=DT) for k, t in p.items()}
    exact = sum((g[k] * v[k]).sum() for k in p)
    fd = fd_directional(lambda q: cavia.meta_loss(q, batch), p, v)
    assert abs(exact - fd) <= 1e-6 * abs(fd)


def test_cavia_needs_a_context():
    with pytest.raises(ConfigError, match=r"model\.context_dim > 0"):
        get_learner("cavia").build(CoordinateMLP(1, 2, hidden=(4,)), inner_lr=0.1,
                                   inner_steps=1)
    with pytest.raises(ConfigError, match="context_dim"):
        CoordinateMLP(1, 2, context_dim=-1)


def test_adapt_curve_adapts_only_the_named_parameters():
    from scimeta.train.adaptation import adapt_curve

    model, batch = model_with_context(), batch_of(n_tasks=2)
    batch = batch._replace(query_x=batch.support_x, query_y=batch.support_y)
    cavia = get_learner("cavia").build(model, inner_lr=0.3, inner_steps=2)
    p = {k: v.detach() for k, v in cavia.init_params().items()}
    cur = adapt_curve(cavia, p, batch, "lbfgs", 0.1, (0, 3), keep_params=True,
                      names=("context",))
    assert cur.params["context"].shape == (2, 3)
    assert not torch.allclose(cur.params["context"][0], p["context"])
    for n in p:  # every other parameter stays at the init, in both tasks
        if n != "context":
            assert torch.equal(cur.params[n], p[n].expand_as(cur.params[n])), n
    assert cur.query_mse[1].lt(cur.query_mse[0]).all()  # L-BFGS lowers the support loss
    with pytest.raises(ConfigError, match="non-empty subset"):
        adapt_curve(cavia, p, batch, "sgd", 0.1, (1,), names=("nope",))


def test_evaluate_lets_validation_choose_the_inner_set(tmp_path):
    """A CAVIA run's evaluation: its init tries its context alone and every parameter
    with each optimizer, the random init only the latter; the choice is recorded."""
    from scimeta.data import GenerationConfig, generate
    from scimeta.runtime.config import from_dict
    from scimeta.train import TrainConfig, train
    from scimeta.train.evaluate import evaluate

    for k, (key, regime, n) in enumerate((("train", "unforced-train", 12),
                                          ("val", "unforced-test-interpolate", 4),
                                          ("test", "unforced-test-extrapolate", 3))):
        generate(GenerationConfig("oscillator", regime, tasks=n, seed=k, support=8, query=12),
                 tmp_path / f"{key}.h5")
    cfg = from_dict(TrainConfig, {
        "data": {"train": str(tmp_path / "train.h5")},
        "model": {"hidden": [8], "context_dim": 2},
        "meta": {"algorithm": "cavia", "inner_lr": 0.5, "inner_steps": 1, "meta_batch": 4,
                 "baselines": []},
        "optim": {"lr": 1e-2, "iterations": 3},
        "run": {"seed": 3, "checkpoint_every": 100, "validate_every": 100, "log_every": 100}})
    assert train(cfg, tmp_path / "run").completed
    ds = evaluate(tmp_path / "run", tmp_path / "test.h5", validation=tmp_path / "val.h5",
                  optimizers=("sgd", "lbfgs", "learned"), budgets=(0, 2), bootstrap=10,
                  write=False, grids={"sgd": (0.01, 0.1), "lbfgs": (0.1, 1.0)})
    flags = ds["adapted_inner_set"]
    assert not flags.sel(init="random").any()
    assert bool(flags.sel(init="cavia", optimizer="learned"))
    assert set(ds["init"].values) == {"cavia", "random"}
    # the choice has the lower validation median: recompute both options
    from scimeta import registry
    from scimeta.data import TaskReader
    from scimeta.train import RunDir
    from scimeta.train.eval_inits import contenders
    from scimeta.train.selection import select_rate

    rd = RunDir(tmp_path / "run")
    info = rd.load_info()
    cav = contenders(rd, rd.load_config(), info, registry.get("oscillator"), ["cavia"],
                     torch.device("cpu"), torch.float32, False)[0]
    assert cav.inner_set == ("context",)
    vb = [TaskReader(str(tmp_path / "val.h5")).batch(range(4)).to(dtype=torch.float32)]
    for opt, grid in (("sgd", (0.01, 0.1)), ("lbfgs", (0.1, 1.0))):
        best = {sub: float(np.min(select_rate(cav.plain, cav.state, vb, opt, grid, 2,
                                              names=sub).median))
                for sub in (None, ("context",))}
        want = best[("context",)] < best[None]
        assert bool(flags.sel(init="cavia", optimizer=opt)) == want, (opt, best)
        chosen = float(ds["validation_median"].sel(init="cavia", optimizer=opt).min())
        assert chosen == pytest.approx(min(best.values()), rel=1e-6)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "lbfgs"])
def test_a_first_stage_moves_its_subset_alone_then_everything(optimizer):
    """``first=(("context",), n)``: the first n steps are exactly the context-only
    adaptation (same points, so the same query MSE at budget n), every other
    parameter untouched; later steps move the weights too."""
    from scimeta.train.adaptation import adapt_curve

    model, batch = model_with_context(), batch_of(n_tasks=3)
    cavia = get_learner("cavia").build(model, inner_lr=0.3, inner_steps=2)
    p = {k: v.detach() for k, v in cavia.init_params().items()}
    n = 4
    only = adapt_curve(cavia, p, batch, optimizer, 0.05, (0, n), names=("context",))
    staged = adapt_curve(cavia, p, batch, optimizer, 0.05, (0, n), keep_params=True,
                         first=(("context",), n))
    torch.testing.assert_close(staged.query_mse, only.query_mse, rtol=1e-10, atol=1e-12)
    for k in p:
        if k != "context":
            assert torch.equal(staged.params[k], p[k].expand_as(staged.params[k])), k
    later = adapt_curve(cavia, p, batch, optimizer, 0.05, (n + 3,), keep_params=True,
                        first=(("context",), n))
    weight = next(k for k in p if k != "context")
    assert not torch.allclose(later.params[weight][0], p[weight])
    if optimizer == "lbfgs":  # the step after the switch re-evaluates the accepted point
        at = adapt_curve(cavia, p, batch, optimizer, 0.05, (n, n + 1), first=(("context",), n))
        torch.testing.assert_close(at.query_mse[1], at.query_mse[0], rtol=0, atol=0)
    with pytest.raises(ConfigError, match="non-empty subset"):
        adapt_curve(cavia, p, batch, optimizer, 0.05, (1,), first=(("nope",), 2))
    with pytest.raises(ConfigError, match="learned"):
        adapt_curve(cavia, p, batch, "learned", None, (1,), first=(("context",), 2))


def test_a_first_stage_descends_its_own_learners_loss():
    """``first_learner``: the first stage is exactly the subset-only adaptation on that
    learner's loss; the second stage descends the main learner's."""
    from scimeta.train.adaptation import adapt_curve

    model, batch = model_with_context(), batch_of(n_tasks=3)
    data = get_learner("cavia").build(model, inner_lr=0.3, inner_steps=2)
    heavy = get_learner("cavia").build(
        model, inner_lr=0.3, inner_steps=2,
        loss=lambda pred, y: 3.0 * ((pred - y) ** 2).mean())  # another support loss
    p = {k: v.detach() for k, v in data.init_params().items()}
    n = 3
    alone = adapt_curve(data, p, batch, "sgd", 0.05, (n,), keep_params=True,
                        names=("context",))
    staged = adapt_curve(heavy, p, batch, "sgd", 0.05, (n,), keep_params=True,
                         first=(("context",), n), first_learner=data)
    mixed = adapt_curve(heavy, p, batch, "sgd", 0.05, (n,), keep_params=True,
                        first=(("context",), n))
    other = get_learner("cavia").build(model_with_context(rescaled=True), inner_lr=0.3,
                                       inner_steps=2)
    with pytest.raises(ConfigError, match="same model"):
        adapt_curve(heavy, p, batch, "sgd", 0.05, (n,), first=(("context",), n),
                    first_learner=other)
    with pytest.raises(ConfigError, match="without first"):
        adapt_curve(heavy, p, batch, "sgd", 0.05, (n,), first_learner=data)
    for k in p:  # the same points (the query MSE is the main learner's, 3x)
        torch.testing.assert_close(staged.params[k], alone.params[k], rtol=1e-10, atol=1e-12)
    assert not torch.allclose(mixed.params["context"], alone.params["context"])
    # backtracking and the divergence threshold restart with the heavy loss (3x the
    # first stage's): step n is neither undone nor flagged at factor 2.5
    later = adapt_curve(heavy, p, batch, "sgd", 0.05, (n + 1,), keep_params=True,
                        first=(("context",), n), first_learner=data, backtrack=True,
                        factor=2.5)
    assert not later.diverged.any()
    # step n is one SGD step of the heavy loss on every parameter from the first stage
    start = {k: alone.params[k] if k == "context" else p[k].expand_as(alone.params[k])
             for k in p}
    from torch.func import functional_call, grad, vmap

    def heavy_loss(q, x, y):
        return 3.0 * ((functional_call(model, q, (x,)) - y) ** 2).mean()

    g = vmap(grad(heavy_loss))(start, batch.support_x, batch.support_y)
    for k in p:
        torch.testing.assert_close(later.params[k], start[k] - 0.05 * g[k], rtol=1e-9,
                                   atol=1e-12)
