"""Shared pieces of the meta-learning tests: a float64 physics-informed task batch and
the check that two learners give the same meta-loss and meta-gradient."""

from __future__ import annotations

import torch

from scimeta.meta import TaskBatch

DT = torch.float64


def physics_batch(family, din: int, dout: int, n_tasks: int = 3, seed: int = 0) -> TaskBatch:
    """Random float64 tasks with K = 5, Q = 6, C = 7 and parameters in [0.3, 1.3)."""
    g = torch.Generator().manual_seed(seed)

    def r(n: int, d: int) -> torch.Tensor:
        return torch.rand(n_tasks, n, d, generator=g, dtype=DT)

    p = torch.rand(n_tasks, len(family.params), generator=g, dtype=DT) + 0.3
    return TaskBatch(r(5, din), torch.randn(n_tasks, 5, dout, generator=g, dtype=DT),
                     r(6, din), torch.randn(n_tasks, 6, dout, generator=g, dtype=DT),
                     r(7, din), p)


def assert_same_meta_gradient(a, b, params, batch, rtol_loss: float = 1e-12,
                              rtol_grad: float = 1e-11) -> list[torch.Tensor]:
    """Learners ``a`` and ``b`` give the same ``meta_loss`` and its gradient with
    respect to every entry of ``params`` (``b``'s gradients are returned)."""
    la, lb = a.meta_loss(params, batch), b.meta_loss(params, batch)
    assert torch.allclose(la, lb, rtol=rtol_loss, atol=0)
    ga = torch.autograd.grad(la, list(params.values()))
    gb = torch.autograd.grad(lb, list(params.values()))
    for x, y in zip(ga, gb, strict=True):
        assert torch.allclose(x, y, rtol=rtol_grad, atol=rtol_grad * 1e-2 * float(y.abs().max()))
    return list(gb)
