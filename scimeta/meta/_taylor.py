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

from ._fast import SequentialPlan, _linear
from ._input_jets import input_jets

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
        s1 = torch.addcmul(torch.ones((), dtype=z.dtype, device=z.device), t, t, value=-1)
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

    def forward(self, p: Mapping[str, torch.Tensor],
                x: torch.Tensor) -> tuple[torch.Tensor, dict[tuple[int, int], torch.Tensor]]:
        """x ``[B, N, d_in]`` -> (y ``[B, N, C]``, derivatives along the input columns)."""
        plan, a = self.plan, self.plan.affine
        streams = self._streams()
        n = x.shape[-2]
        # first layer without an input map: z^(1) along column c is the weight column
        # (times the affine map's scale); higher input derivatives vanish, z^(k >= 2) = 0.
        # With one (Fourier features, periodic embedding), its derivatives come first.
        derivs: dict[tuple[int, int], torch.Tensor] | None = None
        if plan.embed is None:
            h = plan.affine_inputs(x)
        else:
            h, derivs = input_jets(plan, x, streams)
        last = len(plan.layers) - 1
        for i, layer in enumerate(plan.layers):
            w, bias = plan.layer_params(p, i)  # a context enters layer 0 as a bias
            z0 = _linear(h, w, bias)
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
                h, derivs = z0, zd
                break
            s = activation_derivatives(layer.act, z0, layer.omega0,
                                       max(self.orders.values()))
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
