"""``MAML(..., compile=True)``: the hand-batched meta-loss through ``torch.compile``
gives the eager meta-loss and meta-gradient to round-off (float64), and a
configuration the compiled path cannot take is refused before any work."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from scimeta import problems
from scimeta.errors import ConfigError
from scimeta.meta import MAML, MetaSGD, PhysicsLoss, Reptile, TaskBatch

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
        le, lc = eager.meta_loss(p, b), compiled.meta_loss(p, b)
        ge = torch.autograd.grad(le, list(p.values()))
        gc = torch.autograd.grad(lc, list(p.values()))
        assert torch.allclose(lc, le, rtol=1e-13, atol=0)
        for a, c in zip(gc, ge, strict=True):
            assert torch.allclose(a, c, rtol=1e-12, atol=1e-14 * float(c.abs().max()))


def test_compiled_maml_equals_eager():
    _check_equal(MAML)


@pytest.mark.slow
@pytest.mark.parametrize("cls,kw", [(MetaSGD, {}), (MAML, {"first_order": True})])
def test_compiled_variants_equal_eager(cls, kw):
    _check_equal(cls, **kw)


@pytest.mark.parametrize("make", [
    lambda: MAML(_model(), compile=True, fast=False),
    lambda: MAML(_model(), compile=True, physics=PhysicsLoss(problems.get("oscillator"))),
    lambda: Reptile(_model(), compile=True),
    lambda: MAML(_model(), compile="yes"),
])
def test_compile_refused_where_it_cannot_apply(make):
    with pytest.raises(ConfigError, match="compile"):
        make()
