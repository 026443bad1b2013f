"""Input derivatives of a plain MLP by Taylor-mode propagation, batched over tasks.

For the equation residual a physics-informed loss needs the network's derivatives
with respect to its inputs: ``du/dt`` and pure spatial derivatives such as
``u_x``, ``u_xx``, ``u_xxx``. Along one input direction ``e`` the directional
derivatives ``h^(k) = d^k h / ds^k`` of every layer's output are propagated with
the forward pass:

- a Linear layer is linear: ``z^(0) = W h^(0) + b``, ``z^(k) = W h^(k)``;
- an elementwise activation σ follows Faà di Bruno's formula, with
  ``s_j = σ^(j)(z^(0))``::

      h^(1) = s1 z1
      h^(2) = s2 z1² + s1 z2
      h^(3) = s3 z1³ + 3 s2 z1 z2 + s1 z3
      h^(4) = s4 z1⁴ + 6 s3 z1² z2 + s2 (3 z2² + 4 z1 z3) + s1 z4

All derivative streams of all directions go through each layer's weights in one
batched matrix product over tasks (weights ``[out, in]`` shared or ``[B, out, in]``
per task), so the cost is a few forward passes, not a nested ``jvp`` per point.
These are ordinary differentiable torch ops: autograd differentiates them twice
(inner gradient, then the meta-gradient), and the result equals the nested-``jvp``
path of :class:`~scimeta.meta.PhysicsLoss` to round-off (tested).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..typing import Params
from ._fast import SequentialPlan, _linear

#: highest derivative order propagated (the built-in families need at most 3)
MAX_ORDER = 4


def activation_derivatives(kind: str | None, z: torch.Tensor, omega: float,
                           order: int) -> list[torch.Tensor]:
    """``[σ(z), σ'(z), ..., σ^(order)(z)]`` for the activations of :mod:`._fast`."""
    if kind is None:
        out = [z, torch.ones_like(z)]
        return (out + [torch.zeros_like(z)] * (order - 1))[:order + 1]
    if kind == "relu":
        h = torch.relu(z)
        out = [h, (z > 0).to(z.dtype)]
        return (out + [torch.zeros_like(z)] * (order - 1))[:order + 1]
    if kind == "tanh":
        t = torch.tanh(z)
        s1 = 1 - t * t
        out = [t, s1]
        if order >= 2:
            out.append(-2 * t * s1)
        if order >= 3:
            t2 = t * t
            out.append(s1 * (6 * t2 - 2))
        if order >= 4:
            out.append(8 * t * s1 * (2 - 3 * t2))
        return out[:order + 1]
    if kind == "sine":
        sn, cs = torch.sin(omega * z), torch.cos(omega * z)
        out = [sn, omega * cs]
        for k in range(2, order + 1):  # the cycle sin, cos, -sin, -cos, times omega^k
            out.append(omega**k * (cs if k % 2 else sn) * (1 if k % 4 in (0, 1) else -1))
        return out[:order + 1]
    if kind == "silu":  # silu^(k) = z σ^(k) + k σ^(k-1), σ the logistic function
        sg = torch.sigmoid(z)
        g1 = sg * (1 - sg)
        g = [sg, g1]
        if order >= 2:
            g.append(g1 * (1 - 2 * sg))
        if order >= 3:
            g.append(g1 * (1 - 6 * sg + 6 * sg * sg))
        if order >= 4:
            g.append(g1 * (1 - 2 * sg) * (1 - 12 * sg + 12 * sg * sg))
        out = [z * sg] + [z * g[k] + k * g[k - 1] for k in range(1, order + 1)]
        return out[:order + 1]
    raise ValueError(f"no Taylor rule for activation {kind!r}")


def compose(s: list[torch.Tensor], zs: list[torch.Tensor]) -> list[torch.Tensor]:
    """``[h^(1), ..., h^(m)]`` of ``h = σ(z)`` from ``zs = [z^(1), ..., z^(m)]``, m <= 4."""
    m = len(zs)
    z1 = zs[0]
    out = [s[1] * z1]
    if m >= 2:
        z2 = zs[1]
        z1sq = z1 * z1
        out.append(s[2] * z1sq + s[1] * z2)
    if m >= 3:
        z3 = zs[2]
        out.append(s[3] * z1sq * z1 + 3 * s[2] * z1 * z2 + s[1] * z3)
    if m >= 4:
        z4 = zs[3]
        out.append(s[4] * z1sq * z1sq + 6 * s[3] * z1sq * z2
                   + s[2] * (3 * z2 * z2 + 4 * z1 * z3) + s[1] * z4)
    return out


class TaylorMLP:
    """Values and pure input derivatives of an eligible MLP (a :class:`SequentialPlan`).

    ``orders`` maps an input column to the highest derivative order needed along it.
    :meth:`forward` returns the output ``[B, N, C]`` and ``{(column, k): [B, N, C]}``.
    """

    def __init__(self, plan: SequentialPlan, orders: Mapping[int, int]) -> None:
        bad = {c: k for c, k in orders.items() if not 1 <= k <= MAX_ORDER}
        if bad:
            raise ValueError(f"derivative orders must be 1..{MAX_ORDER}, got {bad}")
        self.plan = plan
        self.orders = dict(sorted(orders.items()))

    def _streams(self) -> list[tuple[int, int]]:
        return [(c, k) for c, m in self.orders.items() for k in range(1, m + 1)]

    def forward(self, p: Mapping[str, torch.Tensor], x: torch.Tensor,
                cache: list | None = None
                ) -> tuple[torch.Tensor, dict[tuple[int, int], torch.Tensor]]:
        """x ``[B, N, d_in]`` -> (y ``[B, N, C]``, derivatives along the input columns).

        With a list ``cache``, each layer's inputs, pre-activation streams and
        activation derivatives (one order more) are appended for :meth:`backward`.
        """
        plan, a = self.plan, self.plan.affine
        h = x if a is None else x * a.x_scale + a.x_shift
        streams = self._streams()
        n = x.shape[-2]
        # first layer: z^(1) along column c is the weight column (times the input map's
        # scale); higher input derivatives vanish, so z^(k >= 2) = 0
        derivs: dict[tuple[int, int], torch.Tensor] | None = None
        last = len(plan.layers) - 1
        for i, layer in enumerate(plan.layers):
            w = p[layer.weight]
            bias = None if layer.bias is None else p[layer.bias]
            z0 = _linear(h, w, bias)
            if cache is not None:
                h_in = h
                hd_in = self._input_streams(x, h) if derivs is None else derivs
            if derivs is None:
                zd = {}
                for c, k in streams:
                    if k == 1:
                        col = w[..., :, c] if a is None else w[..., :, c] * a.x_scale[c]
                        zd[(c, k)] = (col.unsqueeze(-2) if col.dim() == 2 else col
                                      ).expand(*z0.shape)
                    else:
                        zd[(c, k)] = torch.zeros_like(z0)
            else:
                stacked = torch.cat([derivs[s] for s in streams], dim=-2)
                parts = _linear(stacked, w, None).split(n, dim=-2)
                zd = dict(zip(streams, parts, strict=True))
            if layer.act is None and i == last:
                if cache is not None:
                    cache.append((h_in, hd_in, None, zd))
                h, derivs = z0, zd
                break
            top = max(self.orders.values()) + (cache is not None)
            s = activation_derivatives(layer.act, z0, layer.omega0, top)
            if cache is not None:
                cache.append((h_in, hd_in, s, zd))
            h = s[0]
            derivs = {}
            for c, m in self.orders.items():
                hs = compose(s, [zd[(c, k)] for k in range(1, m + 1)])
                derivs.update({(c, k): hs[k - 1] for k in range(1, m + 1)})
        assert derivs is not None
        if a is not None:
            h = h * a.y_scale + a.y_shift
            derivs = {key: v * a.y_scale for key, v in derivs.items()}
        return h, derivs

    def _input_streams(self, x: torch.Tensor,
                       h: torch.Tensor) -> dict[tuple[int, int], torch.Tensor]:
        """The network input's derivative streams: e_c (times the input map's scale)
        for order 1, zero above."""
        a = self.plan.affine
        out = {}
        for c, k in self._streams():
            v = torch.zeros_like(h)
            if k == 1:
                v[..., c] = 1.0 if a is None else a.x_scale[c]
            out[(c, k)] = v
        return out

    def backward(self, p: Mapping[str, torch.Tensor], cache: list, g_y: torch.Tensor,
                 g_d: Mapping[tuple[int, int], torch.Tensor], lowest: int) -> Params:
        """Per-task gradients ``[B, *shape]`` of a loss from its gradients with respect to
        the outputs of :meth:`forward` (``g_y`` ``[B, N, C]``, ``g_d`` per stream; absent
        streams count as zero), for layers >= ``lowest``. Written in differentiable
        torch ops (the meta-gradient differentiates it); orders up to 3."""
        if max(self.orders.values()) > 3:
            raise ValueError("the hand-written backward covers derivative orders <= 3")
        a = self.plan.affine
        streams = self._streams()
        if a is not None:
            g_y = g_y * a.y_scale
            g_d = {key: v * a.y_scale for key, v in g_d.items()}
        g0 = g_y
        gd = {key: g_d[key] if key in g_d else torch.zeros_like(g_y) for key in streams}
        grads: Params = {}
        for i in range(len(self.plan.layers) - 1, lowest - 1, -1):
            layer = self.plan.layers[i]
            h_in, hd_in, s, zd = cache[i]
            if s is None:
                dz0, dzd = g0, gd
            else:
                dz0, dzd = _activation_backward(s, zd, g0, gd, self.orders)
            rows = torch.cat([dz0, *(dzd[key] for key in streams)], dim=-2)
            cols = torch.cat([h_in, *(hd_in[key] for key in streams)], dim=-2)
            grads[layer.weight] = torch.bmm(rows.mT, cols)
            if layer.bias is not None:
                grads[layer.bias] = dz0.sum(-2)
            if i > lowest:
                w = p[layer.weight]
                back = (rows.reshape(-1, rows.shape[-1]) @ w).view(*rows.shape[:-1], w.shape[1]) \
                    if w.dim() == 2 else torch.bmm(rows, w)
                parts = back.split(dz0.shape[-2], dim=-2)
                g0, gd = parts[0], dict(zip(streams, parts[1:], strict=True))
        return grads


def _activation_backward(s: list[torch.Tensor], zd: Mapping[tuple[int, int], torch.Tensor],
                         g0: torch.Tensor, gd: Mapping[tuple[int, int], torch.Tensor],
                         orders: Mapping[int, int]
                         ) -> tuple[torch.Tensor, dict[tuple[int, int], torch.Tensor]]:
    """Gradients with respect to the pre-activation streams of h = σ(z) (Faà di Bruno
    differentiated by hand; ``s[j] = σ^(j)(z0)`` up to one order above the streams)."""
    dz0 = g0 * s[1]
    dzd: dict[tuple[int, int], torch.Tensor] = {}
    for c, m in orders.items():
        z1 = zd[(c, 1)]
        g1 = gd[(c, 1)]
        dz0 = dz0 + g1 * s[2] * z1
        d1 = g1 * s[1]
        if m >= 2:
            z2, g2 = zd[(c, 2)], gd[(c, 2)]
            dz0 = dz0 + g2 * (s[3] * z1 * z1 + s[2] * z2)
            d1 = d1 + g2 * (2 * s[2] * z1)
            d2 = g2 * s[1]
        if m >= 3:
            z3, g3 = zd[(c, 3)], gd[(c, 3)]
            dz0 = dz0 + g3 * (s[4] * z1 * z1 * z1 + 3 * s[3] * z1 * z2 + s[2] * z3)
            d1 = d1 + g3 * (3 * s[3] * z1 * z1 + 3 * s[2] * z2)
            d2 = d2 + g3 * (3 * s[2] * z1)
            dzd[(c, 3)] = g3 * s[1]
        dzd[(c, 1)] = d1
        if m >= 2:
            dzd[(c, 2)] = d2
    return dz0, dzd

