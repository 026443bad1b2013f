"""The per-task weight-gradient product of the hand-batched path (``meta/_layouts``)
equals ``torch.bmm`` in value and in first and second derivatives (float64
``gradcheck``/``gradgradcheck``), eagerly and under ``torch.func`` transforms."""

from __future__ import annotations

import torch
from torch.autograd import gradcheck, gradgradcheck

from scimeta.meta._layouts import outer

DT = torch.float64


def _r(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed + sum(shape))
    return torch.randn(*shape, generator=g, dtype=DT, requires_grad=True)


def test_outer_equals_bmm_and_its_derivatives():
    d, r = _r(3, 4, 5), _r(3, 4, 6, seed=1)
    ref = torch.bmm(d.mT, r)
    assert torch.equal(outer(d, r), ref)
    g = _r(3, 6, 5, seed=2).detach().mT  # a transposed-view cotangent, as autograd sends
    got = torch.autograd.grad(outer(d, r), (d, r), g)
    want = torch.autograd.grad(ref, (d, r), g)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-14, atol=1e-14)
    assert gradcheck(outer, (d, r))
    assert gradgradcheck(outer, (d, r))


def test_under_torch_func_transforms():
    """grad and vmap (the compiled whole-gradient path traces torch.func.grad)."""
    d, r = _r(2, 4, 3).detach(), _r(2, 4, 5, seed=1).detach()
    gf = torch.func.grad(lambda a: outer(a, r).square().sum())(d)
    ga = torch.func.grad(lambda a: torch.bmm(a.mT, r).square().sum())(d)
    torch.testing.assert_close(gf, ga, rtol=1e-14, atol=1e-14)
    v = torch.func.vmap(outer)(d.unsqueeze(1), r.unsqueeze(1))
    torch.testing.assert_close(v.squeeze(1), torch.bmm(d.mT, r), rtol=1e-14, atol=1e-14)
    # second derivative under the transform (what a Hessian-vector product takes)
    hv = torch.func.grad(lambda a: torch.func.grad(
        lambda b: outer(b, r).square().sum())(a).sum())(d)
    hr = torch.func.grad(lambda a: torch.func.grad(
        lambda b: torch.bmm(b.mT, r).square().sum())(a).sum())(d)
    torch.testing.assert_close(hv, hr, rtol=1e-13, atol=1e-13)


def test_untracked_products_skip_autograd():
    """Inputs that need no gradient (first-order MAML's detached inner gradient)
    take the plain product: nothing is recorded."""
    d, r = _r(2, 4, 3).detach(), _r(2, 4, 5, seed=1).detach()
    out = outer(d, r)
    assert out.grad_fn is None and torch.equal(out, torch.bmm(d.mT, r))
    assert type(outer(d.requires_grad_(), r).grad_fn).__name__.startswith("_OuterEager")
