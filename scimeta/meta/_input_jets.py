"""Input derivatives of the first layer's input, through the fixed input maps.

A :class:`~scimeta.meta._fast.SequentialPlan` feeds its first Linear layer with
``h = embed(x · x_scale + x_shift)``: the optional affine map of
:class:`~scimeta.nn.Rescaled`, then the optional map of
:class:`~scimeta.nn.CoordinateMLP`, ``[h[keep], sin(h F), cos(h F)]`` (Fourier
features or the periodic embedding). For Taylor-mode propagation
(:mod:`._taylor`, :mod:`._taylor_grad`) the first layer needs the pure k-th
derivatives of ``h`` along each input column c. With ``a = F[c] · x_scale[c]``
(``[m]``) and ``z = h F``::

    d^k/dx_c^k sin(z) = a^k sin(z + k π/2),   d^k/dx_c^k cos(z) = a^k cos(z + k π/2),

and a passed-through column contributes ``x_scale[c]`` at order 1, nothing above.
The maps hold no trainable parameters, so these rows are constants of the inner and
outer gradients (they still follow the inputs' dtype and device).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._fast import SequentialPlan


def input_jets(plan: SequentialPlan, x: torch.Tensor, streams: Sequence[tuple[int, int]],
               ) -> tuple[torch.Tensor, dict[tuple[int, int], torch.Tensor]]:
    """(first-layer input ``[B, N, n_in]``, ``{(c, k): d^k h / dx_c^k [B, N, n_in]}``).

    Only for a plan with an input map (``plan.embed``); x ``[B, N, d_in]``.
    """
    net = plan.embed
    assert net is not None
    freq = net.embedding()
    assert freq is not None
    a = plan.affine
    h = plan.affine_inputs(x)
    freq = freq.to(h.dtype)
    z = h @ freq
    sn, cs = torch.sin(z), torch.cos(z)
    keep = list(net.keep)
    values = torch.cat([h[..., keep], sn, cs], dim=-1)
    # the k-th derivatives of (sin, cos) cycle with k mod 4
    cycle = [(sn, cs), (cs, -sn), (-sn, -cs), (-cs, sn)]
    jets: dict[tuple[int, int], torch.Tensor] = {}
    for c, k in streams:
        scale = 1.0 if a is None else a.x_scale[c]
        ak = (freq[c] * scale) ** k
        d_sin, d_cos = cycle[k % 4]
        kept = h.new_zeros(*h.shape[:-1], len(keep))
        if k == 1 and c in keep:
            kept[..., keep.index(c)] = scale
        jets[(c, k)] = torch.cat([kept, ak * d_sin, ak * d_cos], dim=-1)
    return values, jets
