"""The Rescaled wrapper: exact affine maps, and the hand-batched MAML path agrees."""

from __future__ import annotations

import pytest
import torch

from scimeta.meta import MAML, TaskBatch
from scimeta.nn import CoordinateMLP, Rescaled


@pytest.fixture()
def net() -> Rescaled:
    torch.manual_seed(0)
    inner = CoordinateMLP(1, 2, (16, 16)).double()
    return Rescaled(inner, [0.0], [10.0], [0.1, -0.2], [0.5, 2.0], dtype=torch.float64)


def test_forward_is_the_documented_affine_sandwich(net):
    x = torch.linspace(0, 10, 7, dtype=torch.float64)[:, None]
    f64 = {"dtype": torch.float64}
    scale, shift = torch.tensor([0.5, 2.0], **f64), torch.tensor([0.1, -0.2], **f64)
    manual = net.net(2 * x / 10 - 1) * scale + shift
    torch.testing.assert_close(net(x), manual, rtol=0, atol=1e-15)
    # derivative with respect to the physical input: chain rule gives the 2/10 factor
    d = torch.func.jacrev(lambda t: net(t[None])[0])(x[3])
    d_inner = torch.func.jacrev(lambda s: net.net(s[None])[0])(2 * x[3] / 10 - 1)
    torch.testing.assert_close(d, d_inner * 0.2 * torch.tensor([[0.5], [2.0]], **f64))


@pytest.mark.parametrize("first_order", [False, True])
def test_fast_path_equals_generic_path(net, first_order):
    g = torch.Generator().manual_seed(1)
    b = TaskBatch(torch.rand(4, 6, 1, generator=g, dtype=torch.float64) * 10,
                  torch.randn(4, 6, 2, generator=g, dtype=torch.float64),
                  torch.rand(4, 9, 1, generator=g, dtype=torch.float64) * 10,
                  torch.randn(4, 9, 2, generator=g, dtype=torch.float64))
    fast = MAML(net, inner_lr=0.1, inner_steps=3, first_order=first_order)
    slow = MAML(net, inner_lr=0.1, inner_steps=3, first_order=first_order, fast=False)
    assert fast._fast is not None and slow._fast is None
    p = fast.init_params()
    lf, ls = fast.meta_loss(p, b), slow.meta_loss(p, b)
    gf = torch.autograd.grad(lf, list(p.values()))
    gs = torch.autograd.grad(ls, list(p.values()))
    torch.testing.assert_close(lf, ls, rtol=1e-13, atol=0)
    for a, c in zip(gf, gs, strict=True):
        torch.testing.assert_close(a, c, rtol=1e-11, atol=1e-14)
