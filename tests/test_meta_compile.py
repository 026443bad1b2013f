"""``MAML(..., compile=True)``: the hand-batched meta-loss through ``torch.compile``
gives the eager meta-loss and meta-gradient to round-off (float64), and a
configuration the compiled path cannot take is refused before any work."""

from __future__ import annotations

import pytest
import torch
from meta_checks import assert_same_meta_gradient, physics_batch
from torch import nn

from scimeta import problems
from scimeta.errors import ConfigError
from scimeta.meta import MAML, Joint, MetaSGD, PhysicsLoss, Reptile, TaskBatch

DT = torch.float64


def _batch(seed: int = 0) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)

    def r(n: int) -> torch.Tensor:
        return torch.rand(3, n, 1, generator=g, dtype=DT)

    return TaskBatch(r(5), r(5), r(6), r(6))


def _model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1)).to(DT)


def _check_equal(cls, **kw) -> None:
    eager, compiled = cls(_model(), 0.1, 3, **kw), cls(_model(), 0.1, 3, compile=True, **kw)
    p = eager.init_params()
    for seed in (0, 1):  # the second batch reuses the compiled graph
        b = _batch(seed)
        ge = assert_same_meta_gradient(compiled, eager, p, b, 1e-13, 1e-12)
        # meta_gradient: loss and gradient traced as one compiled graph
        lg, gg = compiled.meta_gradient(p, b)
        assert torch.allclose(lg, eager.meta_loss(p, b).detach(), rtol=1e-13, atol=0)
        for k, c in zip(p, ge, strict=True):
            assert torch.allclose(gg[k], c, rtol=1e-12, atol=1e-14 * float(c.abs().max())), k


def test_compiled_maml_equals_eager():
    _check_equal(MAML)


@pytest.mark.slow
@pytest.mark.parametrize("cls,kw", [(MetaSGD, {}), (MAML, {"first_order": True}),
                                    (Joint, {})])
def test_compiled_variants_equal_eager(cls, kw):
    _check_equal(cls, **kw)


@pytest.mark.slow
def test_compiled_normalized_run_equals_torch_func():
    """A normalized run's loss (``ScaledMSE``) compiles: the compiled meta-gradient of a
    Rescaled network equals the generic ``torch.func`` path's."""
    from scimeta.meta import ScaledMSE
    from scimeta.nn import Rescaled

    model = Rescaled(_model(), [0.1], [1.3], [0.2], [1.7], dtype=DT)
    compiled = MAML(model, 0.1, 3, loss=ScaledMSE(model), compile=True)
    generic = MAML(model, 0.1, 3, loss=ScaledMSE(model), fast=False)
    p, b = generic.init_params(), _batch()
    ge = assert_same_meta_gradient(compiled, generic, p, b, 1e-13, 1e-12)
    lg, gg = compiled.meta_gradient(p, b)
    assert torch.allclose(lg, generic.meta_loss(p, b).detach(), rtol=1e-13, atol=0)
    for k, c in zip(p, ge, strict=True):
        assert torch.allclose(gg[k], c, rtol=1e-12, atol=1e-14 * float(c.abs().max())), k


@pytest.mark.slow
def test_compiled_physics_maml_equals_eager():
    """The physics-informed hand path (Taylor streams + written-out inner gradient)
    compiles too; compiling it takes minutes on a small CPU, hence ``slow``."""
    fam = problems.get("oscillator")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, 6), nn.Tanh(), nn.Linear(6, 2)).to(DT)
    kw = {"physics": PhysicsLoss(fam, 0.3, "both")}
    eager, compiled = MAML(model, 0.05, 2, **kw), MAML(model, 0.05, 2, compile=True, **kw)
    b = physics_batch(fam, 1, 2)
    p = eager.init_params()
    ge = assert_same_meta_gradient(compiled, eager, p, b)
    _, gg = compiled.meta_gradient(p, b)  # one traced graph, torch.func inside
    for k, c in zip(p, ge, strict=True):
        assert torch.allclose(gg[k], c, rtol=1e-11, atol=1e-13 * float(c.abs().max())), k


def _model2() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 2)).to(DT)


@pytest.mark.parametrize("make", [
    lambda: MAML(_model(), compile=True, fast=False),
    lambda: MAML(_model2(), compile=True,
                 physics=PhysicsLoss(problems.get("oscillator"), where="outer")),
    lambda: MAML(_model2(), compile=True, loss=lambda a, b: (a - b).abs().mean()),
    lambda: Reptile(_model(), compile=True),
    lambda: MAML(_model(), compile="yes"),
])
def test_compile_refused_where_it_cannot_apply(make):
    with pytest.raises(ConfigError, match="compile"):
        make()


def test_run_config_compile_builds_compiled_learners_or_falls_back(caplog):
    from scimeta.train.config import DataConfig, MetaConfig, TrainConfig
    from scimeta.train.models import build_learner

    cfg = TrainConfig(DataConfig(train="unused.h5"), meta=MetaConfig(compile=True))
    maml = build_learner(cfg, _model(), None, "maml")
    assert maml._compiled is not None  # compiled lazily: nothing is compiled yet
    with caplog.at_level("WARNING"):
        reptile = build_learner(cfg, _model(), None, "reptile")
    assert reptile._compiled is None and "trains eagerly" in caplog.text
