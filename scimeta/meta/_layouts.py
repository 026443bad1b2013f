"""The per-task weight-gradient product with a backward pass in a fast layout.

The hand-batched inner gradient (:mod:`._fast`, :mod:`._taylor_grad`) forms each
layer's weight gradient as ``dzᵀ h`` per task (``[B, out, K]`` times ``[B, K, in]``,
K the rows, e.g. 10 support points). Second-order MAML differentiates it, and
autograd's own backward of ``bmm`` then computes ``dz``'s cotangent as ``g hᵀ``:
an ``[out, in] x [in, K]`` product with a narrow result, which the CPU's batched
kernels run 2.5-8x slower than the same numbers computed as ``h gᵀ``
(``[K, in] x [in, out]``), slowest when ``g`` arrives as a transposed view
(measured for B = 25, K = 10, width 64: 96-319 µs against ~40 µs).

:func:`outer` computes the same value as ``torch.bmm(d.mT, r)`` and the same
gradients (tested in float64 with ``gradcheck`` and ``gradgradcheck``); its backward
is written with ordinary differentiable ops in the fast orientation, so higher
derivatives (Hessian-vector products of the meta-loss) stay exact. Measured with
``python bench/bench_layouts.py`` (docs/benchmarks.md): the second-order
meta-gradient of the 1-64-64-64-1 tanh MLP 1.2-1.4x faster eager. (Doing the same for the layer
product ``h Wᵀ``, whose weight cotangent autograd returns as a transposed view, was
measured too and bought nothing; not kept.)
"""

from __future__ import annotations

from typing import Any

import torch


def _outer_backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
    d, r = ctx.saved_tensors
    # g [B, m, n]: d's cotangent r gᵀ [B, K, m] (not (g rᵀ)ᵀ: narrow result),
    # r's cotangent d g [B, K, n]
    gd = torch.bmm(r, g.mT) if ctx.needs_input_grad[0] else None
    gr = torch.bmm(d, g) if ctx.needs_input_grad[1] else None
    return gd, gr


class _Outer(torch.autograd.Function):
    """``dᵀ r`` per task: d ``[B, K, m]``, r ``[B, K, n]`` -> ``[B, m, n]`` (the form
    ``torch.func`` transforms accept)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(d: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        return torch.bmm(d.mT, r)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        ctx.save_for_backward(*inputs)

    backward = staticmethod(_outer_backward)


class _OuterEager(torch.autograd.Function):
    """:class:`_Outer` in the classic form: about a third of its call overhead (6-10 µs
    against ~25 µs per call on CPU), outside ``torch.func`` transforms only."""

    @staticmethod
    def forward(ctx: Any, d: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(d, r)
        return torch.bmm(d.mT, r)

    backward = staticmethod(_outer_backward)


def _tracked(*ts: torch.Tensor | None) -> bool:
    """Whether autograd records a product of ``ts`` (else plain ops do)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in ts)


#: torch's own test whether a ``torch.func`` transform is active (its
#: ``autograd.Function`` dispatch uses it); if a torch lacks it, always the
#: transform-safe form
_ACTIVE = getattr(torch._C, "_are_functorch_transforms_active", lambda: True)


def _transformed() -> bool:
    """Whether a ``torch.func`` transform (grad, vmap, jvp) is active."""
    return bool(_ACTIVE())


def outer(d: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Per-task ``dᵀ r``: d ``[B, K, m]``, r ``[B, K, n]`` -> ``[B, m, n]`` (a layer's
    weight gradient from its output cotangents d and input rows r)."""
    if _transformed():
        return _Outer.apply(d, r)
    if not _tracked(d, r):
        return torch.bmm(d.mT, r)
    return _OuterEager.apply(d, r)
