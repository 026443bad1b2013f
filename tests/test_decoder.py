"""The initial-state decoder baseline (``scimeta.train.decoder``).

Exact answers: a training task's code reproduces its stored initial field through the
family's basis to round-off; the batches carry the scaled parameters and the code in
the columns the network reads, and the field points they add are grid values of the
task's solution; the test-time network with the code as a parameter equals the
trained one with the code as an input (so a perfect code fit recovers the training
prediction); the resumed phase equals the uninterrupted one bit for bit; a family
without a basis of initial states is refused before anything is written.
"""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch
from torch.func import functional_call

from scimeta import registry
from scimeta.data import GenerationConfig, TaskReader, generate
from scimeta.errors import ConfigError
from scimeta.params import TimeGrid
from scimeta.problems.burgers import Burgers
from scimeta.runtime.config import from_dict
from scimeta.train import RunDir, TrainConfig, train
from scimeta.train import loop as loop_module
from scimeta.train.conditioned import DECODER, box_of, condition_batch, refuse_conditioned
from scimeta.train.decoder import (
    CODE_STEPS,
    DECODER_POINTS,
    CodedField,
    DecoderReader,
    code_dim,
    coded_state,
    decoder_basis,
    decoder_readers,
    initial_codes,
)
from scimeta.train.eval_inits import contenders
from scimeta.train.evaluate import evaluate
from scimeta.train.setup import load_init


class TinyBurgers(Burgers):
    name = "test_burgers_decoder"
    shape = {"x": 256}
    time = TimeGrid(0.0, 0.5, 11)


if TinyBurgers.name not in registry.names():
    registry.register(TinyBurgers.name, TinyBurgers)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    d = tmp_path_factory.mktemp("decoder")
    for regime, n, seed in (("train", 16, 0), ("test-interpolate", 6, 1),
                            ("test-extrapolate", 4, 2)):
        generate(GenerationConfig(TinyBurgers.name, regime, tasks=n, seed=seed, support=8,
                                  query=12), d / f"{regime}.h5")
    return d


def config(stores, **meta) -> TrainConfig:
    raw = {
        "data": {"train": str(stores / "train.h5"),
                 "validation": {"ext": str(stores / "test-interpolate.h5")}},
        "model": {"hidden": [16, 16], "normalize": "both", "periodic_modes": 2},
        "meta": {"inner_lr": 0.05, "inner_steps": 1, "meta_batch": 4,
                 "baselines": [DECODER], **meta},
        "optim": {"lr": 1e-2, "iterations": 40, "schedule": "cosine"},
        "run": {"seed": 3, "checkpoint_every": 10, "validate_every": 20, "log_every": 10,
                "deterministic": True},
    }
    return from_dict(TrainConfig, raw, "config")


def test_codes_reproduce_the_stored_initial_fields(stores):
    reader = TaskReader(stores / "train.h5")
    fam = registry.get(TinyBurgers.name)
    basis = decoder_basis(fam, reader)
    codes = initial_codes(reader, basis)
    assert codes.shape == (len(reader), 6)
    assert np.abs(codes).max() <= 1.0  # divided by the bound n_waves * amplitude
    for i in range(len(reader)):
        u0 = basis.field(codes[i] * basis.bound)
        np.testing.assert_allclose(u0, reader.fields(i)[0], atol=1e-6)


def test_codes_refuse_a_first_time_that_is_not_an_initial_state(stores):
    class Later:  # the store seen from its second time on
        def __init__(self, r):
            self.r, self.path, self.tasks, self.meta = r, r.path, r.tasks, r.meta

        def __len__(self):
            return len(self.r)

        def fields(self, i):
            return self.r.fields(i)[1:]

    reader = TaskReader(stores / "train.h5")
    basis = decoder_basis(registry.get(TinyBurgers.name), reader)
    with pytest.raises(ConfigError, match="not a drawn initial state"):
        initial_codes(Later(reader), basis)


def test_batches_carry_parameters_code_and_field_points(stores):
    reader = TaskReader(stores / "train.h5")
    basis = decoder_basis(registry.get(TinyBurgers.name), reader)
    codes = initial_codes(reader, basis)
    lo, hi = [0.02], [0.2]
    plain = DecoderReader(reader, lo, hi, codes)
    b = plain.batch([3, 5])
    assert plain.in_dim == 2 + 1 + 6 and b.support_x.shape == (2, 8, 9)
    raw = reader.batch([3, 5])
    torch.testing.assert_close(b.support_x[..., :2], raw.support_x)
    nu = raw.params[:, 0].double()
    torch.testing.assert_close(b.query_x[:, 0, 2].double(), 2 * (nu - 0.02) / 0.18 - 1,
                               rtol=0, atol=1e-6)
    torch.testing.assert_close(b.query_x[1, :, 3:].double(),
                               torch.as_tensor(codes[5]).expand(12, 6), rtol=0, atol=1e-7)
    assert b.query_x.shape[1] == 12  # no field points without ``points``

    train_r = DecoderReader(reader, lo, hi, codes, points=50)
    g1, g2 = np.random.default_rng(0), np.random.default_rng(0)
    one = train_r.batch(train_r.sample_indices(3, g1))
    idx = train_r.sample_indices(3, g2)
    two = train_r.batch(idx)
    torch.testing.assert_close(one.query_x, two.query_x)  # same generator, same points
    assert one.query_x.shape[1] == 12 + 50
    meta = reader.meta
    for k, i in enumerate(idx):  # every added point is a grid value of the solution
        f = reader.fields(int(i))
        for x, y in zip(one.query_x[k, 12:], one.query_y[k, 12:], strict=True):
            ti = int(np.argmin(np.abs(meta.time - float(x[0]))))
            xi = int(np.argmin(np.abs(meta.space[0] - float(x[1]))))
            assert abs(float(y[0]) - float(f[ti, xi, 0])) < 1e-6


def test_coded_field_equals_the_trained_network_with_the_code_as_input():
    torch.manual_seed(0)
    field = torch.nn.Sequential(torch.nn.Linear(2 + 1 + 6, 8), torch.nn.Tanh(),
                                torch.nn.Linear(8, 1))
    coded = CodedField(field, 6)
    code = torch.randn(6)
    with torch.no_grad():
        coded.context.copy_(code)
    x = torch.randn(5, 7, 3)
    torch.testing.assert_close(coded(x), field(torch.cat([x, code.expand(5, 7, 6)], -1)))
    state = coded_state(dict(field.named_parameters()), 6)
    assert set(state) == {n for n, _ in coded.named_parameters()}
    assert torch.equal(state["context"], torch.zeros(6))
    with pytest.raises(ConfigError, match="code_dim=0"):
        CodedField(field, 0)


def test_phase_trains_resumes_exactly_and_evaluates(stores, tmp_path, monkeypatch):
    cfg = config(stores, algorithm=DECODER, baselines=[])  # a run of the decoder alone
    once = tmp_path / "once"
    assert train(cfg, once).completed
    info = RunDir(once).load_info()
    assert info["decoder"] == {"code_dim": 6, "code_bound": 2.0}
    trained = load_init(RunDir(once), DECODER)
    assert trained["net.net.0.weight"].shape[1] == 1 + 2 * 2 + 1 + 6  # t, sin/cos x, nu, code

    # stopped after 25 steps, then resumed: the same init bit for bit (the field points
    # are drawn from the checkpointed generator)
    real, calls = loop_module.meta_step, []

    def step(learner, *args, **kwargs):
        calls.append(1)
        if len(calls) == 25:
            os.kill(os.getpid(), signal.SIGUSR1)
        return real(learner, *args, **kwargs)

    monkeypatch.setattr(loop_module, "meta_step", step)
    assert not train(cfg, tmp_path / "cut").completed
    monkeypatch.setattr(loop_module, "meta_step", real)
    assert train(cfg, tmp_path / "cut", resume=True).completed
    a, b = load_init(RunDir(once), DECODER), load_init(RunDir(tmp_path / "cut"), DECODER)
    for key in a:
        assert torch.equal(a[key], b[key]), key

    # the test-time network: code as a parameter, zeros; at a task's true code it
    # predicts what the trained network predicts with that code as input
    rd = RunDir(once)
    dev, dt = torch.device("cpu"), torch.float32
    fam = registry.get(TinyBurgers.name)
    (con,) = [c for c in contenders(rd, rd.load_config(), info, fam, [DECODER], dev, dt,
                                    False)]
    assert con.inner_set == ("context",) and con.first == (("context",), CODE_STEPS)
    # adapting everything: the code first, on the data misfit alone (the plain learner)
    assert con.staged(None, "lbfgs+physics") == {"first": (("context",), CODE_STEPS),
                                                 "first_learner": con.plain}
    assert con.plain.physics is None
    assert con.staged(("context",), "lbfgs") == {} and con.staged(None, "learned") == {}
    assert con.staged(None, "lbfgs", 7)["first"] == (("context",), 7)
    assert torch.equal(con.state["context"], torch.zeros(6))
    reader = TaskReader(stores / "test-interpolate.h5")
    train_r, val = decoder_readers(info, TaskReader(stores / "train.h5"), {"ext": reader})
    assert train_r.points == DECODER_POINTS and val["ext"].points == 0
    wide = val["ext"].batch([0])
    lo, hi = box_of(info)
    narrow = condition_batch(reader.batch([0]), lo, hi)
    state = dict(con.state)
    state["context"] = wide.query_x[0, 0, -6:].clone()
    with torch.no_grad():
        got = functional_call(con.plain.model, state, (narrow.query_x[0],))
        field = {k.removeprefix("field."): v for k, v in state.items() if k != "context"}
        want = functional_call(con.plain.model.field, field, (wide.query_x[0],))
    torch.testing.assert_close(got, want)

    ds = evaluate(once, stores / "test-interpolate.h5", budgets=(0, 3),
                  optimizers=("learned", "lbfgs+physics"), physics_weights=(1.0,),
                  write=False)
    assert DECODER in list(ds.init.values)
    q = ds.query_mse.sel(init=DECODER)
    assert np.isfinite(q).all()
    # budget 0 is the decoder at the zero code on the conditioned test tasks, in units
    # of the spread (the loss the other inits are scored with)
    test = condition_batch(TaskReader(stores / "test-interpolate.h5").batch(range(6)), lo, hi)
    with torch.no_grad():
        pred = torch.stack([functional_call(con.plain.model, con.state, (x,))
                            for x in test.query_x])
    want0 = (((pred - test.query_y) / con.plain.model.y_scale) ** 2).mean((1, 2))
    np.testing.assert_allclose(q.sel(optimizer="learned", budget=0), want0.numpy(),
                               rtol=1e-5)


def test_the_code_stage_length_is_chosen_on_validation_and_applied(stores, tmp_path):
    """``code_steps``: each length (0: no code stage) is a validation candidate beside
    the code alone; the chosen one has the least validation median, is recorded, and
    the test tasks adapt with it."""
    from scimeta.train.adaptation import adapt_curve
    from scimeta.train.selection import GRIDS, select_rate

    run = tmp_path / "run"
    assert train(config(stores, algorithm=DECODER, baselines=[]), run).completed
    rd = RunDir(run)
    info, cfg = rd.load_info(), rd.load_config()
    val, test = stores / "test-extrapolate.h5", stores / "test-interpolate.h5"
    ds = evaluate(run, test, validation=val, budgets=(0, 3), select_budget=3,
                  optimizers=("lbfgs",), code_steps=(0, 2), write=False, bootstrap=0)
    assert ds.attrs["code_steps"] == [0, 2]
    (con,) = contenders(rd, cfg, info, registry.get(TinyBurgers.name), [DECODER],
                        torch.device("cpu"), torch.float32, False)
    vb = con.batches([TaskReader(val).batch(range(4)).to(dtype=torch.float32)], info)
    best = {}
    for key, kw in (("alone", {"names": ("context",)}),
                    *((n, con.staged(None, "lbfgs", n)) for n in (0, 2))):
        sel = select_rate(con.plain, con.state, vb, "lbfgs", GRIDS["lbfgs"], 3, **kw)
        assert sel.eligible
        best[key] = (float(sel.median[sel.grid == sel.rate][0]), sel.rate)
    win = min(best, key=lambda k: best[k][0])
    got = int(ds["chosen_code_steps"].sel(init=DECODER, optimizer="lbfgs"))
    assert got == (-1 if win == "alone" else win), best
    assert bool(ds["adapted_inner_set"].sel(init=DECODER, optimizer="lbfgs")) == (
        win == "alone")
    rate = float(ds["chosen_rate"].sel(init=DECODER, optimizer="lbfgs"))
    assert rate == best[win][1]
    tb = con.batches([TaskReader(test).batch(range(6)).to(dtype=torch.float32)], info)[0]
    kw = {"names": ("context",)} if win == "alone" else con.staged(None, "lbfgs", win)
    curve = adapt_curve(con.plain, con.state, tb, "lbfgs", rate, (0, 3), **kw)
    np.testing.assert_allclose(ds["query_mse"].sel(init=DECODER, optimizer="lbfgs"),
                               curve.query_mse.numpy(), rtol=1e-5)
    with pytest.raises(ConfigError, match="code_steps"):
        evaluate(run, test, budgets=(0, 1), optimizers=("lbfgs",), code_steps=(2, 2),
                 write=False)


def test_decoder_is_refused_where_the_family_has_no_basis_or_elsewhere(tmp_path, stores):
    from tests.test_conditioned import Decay  # noqa: F401  (registers test_decay)

    d = tmp_path / "decay"
    d.mkdir()
    generate(GenerationConfig("test_decay", "train", tasks=8, seed=0, support=5, query=10),
             d / "train.h5")
    cfg = from_dict(TrainConfig, {
        "data": {"train": str(d / "train.h5")}, "model": {"hidden": [8]},
        "meta": {"inner_lr": 0.05, "inner_steps": 1, "meta_batch": 4,
                 "baselines": [DECODER]},
        "optim": {"lr": 1e-2, "iterations": 4}}, "config")
    with pytest.raises(ConfigError, match="decoder"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()  # refused before the run directory exists
    with pytest.raises(ConfigError, match="initial-state decoder"):
        refuse_conditioned(DECODER)
    with pytest.raises(ConfigError, match="no 'decoder' entry"):
        code_dim({"norm": {}})
    # a regime whose initial field is known (Burgers' classic -sin(pi x)) has no code
    from types import SimpleNamespace

    fam = registry.get(TinyBurgers.name)
    classic = SimpleNamespace(path="classic.h5", meta=SimpleNamespace(
        regime="classic", space=[fam.space["x"]]))
    with pytest.raises(ConfigError, match="known initial field"):
        decoder_basis(fam, classic)
