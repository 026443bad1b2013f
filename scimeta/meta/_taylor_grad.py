"""Hand-written inner gradient of the physics-informed inner loss for plain MLPs.

The inner loss of one task is ``mean((u(x_s) - y_s)²) + w · mean(r²)``: the
support MSE plus the weighted equation residual ``r`` at the collocation points,
which needs the network's input derivatives (Taylor-mode streams, see
:mod:`._taylor`). Letting autograd take this gradient and then differentiate it
again for the meta-gradient builds a graph of the graph, and its per-op overhead
dominates for small networks. Here the gradient is written out as a reverse pass
through the Taylor-mode forward pass, in ordinary differentiable torch ops, as
:meth:`SequentialPlan.grads <scimeta.meta._fast.SequentialPlan.grads>` does for
the MSE alone; autograd then differentiates it once for the meta-gradient.

Rows. Support points and collocation points go through each layer together as
the *value rows* ``[B, K + N, width]``; the derivative streams ``(column c,
order k)`` of the collocation points are the *stream rows* ``[B, S·N, width]``
(stream-major). A Linear layer maps both with the same weights (the bias only
on value rows); the first layer's stream inputs are constant (``e_c`` times the
input map's scale for k = 1, zero for k >= 2; through a Fourier or periodic input
map, its derivatives, :mod:`._input_jets`), so the weight gradient is
``dZ_vᵀ V_in + dZ_sᵀ S_in`` in every layer alike.

Activation, reverse. With ``s_j = σ^(j)(z⁰)`` and Faà di Bruno's
``h^(k)(s, z^(1..k))`` (:func:`._taylor.compose`), the cotangents are
``dz^(i) = Σ_k dh^(k) ∂h^(k)/∂z^(i)`` and ``dz⁰ = dh⁰ s_1 + Σ_j ds_j s_{j+1}``
with ``ds_j = Σ_k dh^(k) ∂h^(k)/∂s_j``; orders up to 3 are written out (the
built-in families need at most 3; order 4 takes the autograd path).

The residual's cotangents with respect to the network's values and derivatives
come from autograd on the family's :meth:`PhysicsLoss.assemble
<scimeta.meta.PhysicsLoss.assemble>`, a handful of ops. The result equals the
autograd inner gradient to round-off, and so does its meta-gradient (tested
against the ``torch.func`` path).
"""

from __future__ import annotations

from collections.abc import Collection

import torch

from ..typing import Params
from ._fast import SequentialPlan, _linear
from ._input_jets import input_jets
from ._physics import PhysicsLoss
from ._taylor import activation_derivatives, compose

#: highest derivative order the reverse pass is written for
MAX_HAND_ORDER = 3


def compose_backward(s: list[torch.Tensor], zs: list[torch.Tensor], dh: list[torch.Tensor],
                     ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Reverse of :func:`._taylor.compose` along one column (m = len(zs) <= 3).

    Args:
        s: ``[σ, σ', ..., σ^(m+1)]`` at the collocation rows.
        zs: ``[z^(1), ..., z^(m)]``, the layer's pre-activation streams.
        dh: cotangents of ``[h^(1), ..., h^(m)]``.

    Returns:
        (cotangents of ``zs``, the streams' share of the cotangent of ``z⁰``).
    """
    m = len(zs)
    z1, dh1 = zs[0], dh[0]
    dz1 = dh1 * s[1]
    ds1 = dh1 * z1
    if m == 1:
        return [dz1], ds1 * s[2]
    z2, dh2 = zs[1], dh[1]
    dz1 = dz1 + 2 * dh2 * s[2] * z1
    dz2 = dh2 * s[1]
    ds1 = ds1 + dh2 * z2
    z1sq = z1 * z1
    ds2 = dh2 * z1sq
    if m == 2:
        return [dz1, dz2], ds1 * s[2] + ds2 * s[3]
    z3, dh3 = zs[2], dh[2]
    dz1 = dz1 + dh3 * (3 * s[3] * z1sq + 3 * s[2] * z2)
    dz2 = dz2 + 3 * dh3 * s[2] * z1
    dz3 = dh3 * s[1]
    ds1 = ds1 + dh3 * z3
    ds2 = ds2 + 3 * dh3 * z1 * z2
    ds3 = dh3 * z1sq * z1
    return [dz1, dz2, dz3], ds1 * s[2] + ds2 * s[3] + ds3 * s[4]


class TaylorGrad:
    """Per-task gradient of the physics-informed inner loss, written out by hand.

    ``orders`` maps an input column to the highest derivative order the residual
    needs along it (column 0, time, at least 1), as for :class:`._taylor.TaylorMLP`.
    """

    def __init__(self, plan: SequentialPlan, orders: dict[int, int],
                 physics: PhysicsLoss) -> None:
        if max(orders.values()) > MAX_HAND_ORDER:
            raise ValueError(f"hand-written reverse pass covers orders <= {MAX_HAND_ORDER}, "
                             f"got {orders}")
        self.plan, self.physics = plan, physics
        self.orders = dict(sorted(orders.items()))
        self.streams = [(c, k) for c, m in self.orders.items() for k in range(1, m + 1)]
        self.top = max(self.orders.values())

    def inputs(self, sx: torch.Tensor, cx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """First-layer value rows ``[B, K + N, d]`` (support, then collocation) and
        stream rows ``[B, S·N, d]`` (collocation points only)."""
        a = self.plan.affine
        if self.plan.embed is not None:  # an input map: its derivative rows vary
            vc, jets = input_jets(self.plan, cx, self.streams)
            v = torch.cat([self.plan.inputs(sx), vc], dim=-2)
            return v, torch.cat([jets[s] for s in self.streams], dim=-2)
        v = self.plan.affine_inputs(torch.cat([sx, cx], dim=-2))
        b, r, d = cx.shape
        rows = cx.new_zeros(len(self.streams), d)
        for i, (c, k) in enumerate(self.streams):
            if k == 1:
                rows[i, c] = 1.0 if a is None else a.x_scale[c]
        s = rows.repeat_interleave(r, dim=0).expand(b, len(self.streams) * r, d)
        return v, s

    def grads(self, p: Params, inputs: tuple[torch.Tensor, torch.Tensor], sy: torch.Tensor,
              cx: torch.Tensor, tp: torch.Tensor, lowest: int, create_graph: bool,
              only: Collection[str] | None = None) -> Params:
        """Per-task gradients ``[B, *shape]`` of support MSE + physics term, layers >= lowest.

        ``inputs`` from :meth:`inputs`; sy ``[B, K, C]``, cx ``[B, N, d]``, tp ``[B, P]``.
        ``create_graph=False`` (first order) gives the same values, detached.
        ``only``: the names whose gradients are wanted (None: every one from ``lowest``).
        """
        plan, streams, k_sup = self.plan, self.streams, sy.shape[-2]
        v, s = inputs
        n = cx.shape[-2]
        cache: list[tuple[torch.Tensor, torch.Tensor, list[torch.Tensor] | None,
                          dict[tuple[int, int], torch.Tensor] | None]] = []
        for i, layer in enumerate(plan.layers):
            w, bias = plan.layer_params(p, i)  # a context enters layer 0 as a bias
            zv = _linear(v, w, bias)
            zs = _linear(s, w, None)
            if layer.act is None:
                cache.append((v, s, None, None))
                v, s = zv, zs
                continue
            sig = activation_derivatives(layer.act, zv, layer.omega0, self.top + 1)
            sc = [t[..., k_sup:, :] for t in sig]
            zd = dict(zip(streams, zs.split(n, dim=-2), strict=True))
            outs = []
            for c, m in self.orders.items():
                outs += compose(sc, [zd[(c, k)] for k in range(1, m + 1)])
            cache.append((v, s, sig, zd))
            v, s = sig[0], (outs[0] if len(outs) == 1 else torch.cat(outs, dim=-2))
        dv, ds = self._output_cotangents(v, s, sy, cx, tp, create_graph)
        return self._reverse(p, cache, dv, ds, lowest, k_sup, n, only)

    def _output_cotangents(self, v: torch.Tensor, s: torch.Tensor, sy: torch.Tensor,
                           cx: torch.Tensor, tp: torch.Tensor,
                           create_graph: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Cotangents of the MLP's value and stream rows (before the output map).

        Taken with ``torch.func.grad`` of the loss as a function of (v, s): under
        ``create_graph`` the result stays differentiable by the outer autograd pass,
        and unlike a nested ``torch.autograd.grad`` it also traces under
        ``torch.compile``.
        """
        a, k_sup, n = self.plan.affine, sy.shape[-2], cx.shape[-2]
        physics, streams = self.physics, self.streams

        def loss(v: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            y = v if a is None else v * a.y_scale + a.y_shift
            ds_ = s if a is None else s * a.y_scale
            parts = dict(zip(streams, ds_.split(n, dim=-2), strict=True))
            mse = self.plan.error(y[..., :k_sup, :], sy).square().mean(dim=(-2, -1))
            return (mse + physics.task_terms(cx, tp, y[..., k_sup:, :], parts)).sum()

        if not create_graph:
            v, s = v.detach(), s.detach()
        gv, gs = torch.func.grad(loss, argnums=(0, 1))(v, s)
        return gv, gs

    def _reverse(self, p: Params, cache: list, dv: torch.Tensor, ds: torch.Tensor,
                 lowest: int, k_sup: int, n: int,
                 only: Collection[str] | None = None) -> Params:
        plan = self.plan
        g: Params = {}
        for i in range(len(plan.layers) - 1, lowest - 1, -1):
            layer = plan.layers[i]
            v_in, s_in, sig, zd = cache[i]
            if sig is None:
                dzv, dzs = dv, ds
            else:
                sc = [t[..., k_sup:, :] for t in sig]
                dh = dict(zip(self.streams, ds.split(n, dim=-2), strict=True))
                dz_parts: list[torch.Tensor] = []
                extra = None
                for c, m in self.orders.items():
                    dz_c, e = compose_backward(sc, [zd[(c, k)] for k in range(1, m + 1)],
                                               [dh[(c, k)] for k in range(1, m + 1)])
                    dz_parts += dz_c
                    extra = e if extra is None else extra + e
                assert extra is not None
                if layer.act == "relu":  # σ'' = 0: the streams add nothing to dz⁰
                    dzv = torch.ops.aten.threshold_backward(dv, sig[0], 0.0)
                else:  # support rows: dv σ'; collocation rows add the streams' share
                    dzv = torch.cat([dv[..., :k_sup, :] * sig[1][..., :k_sup, :],
                                     torch.addcmul(extra, dv[..., k_sup:, :], sc[1])], dim=-2)
                dzs = dz_parts[0] if len(dz_parts) == 1 else torch.cat(dz_parts, dim=-2)
            plan.put_layer_grads(p, g, i, dzv, v_in, only, streams=(dzs, s_in))
            if i > lowest:
                w = p[layer.weight]
                dv, ds = _back(dzv, w), _back(dzs, w)
        return g


def _back(d: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``d @ w`` for shared ``[out, in]`` or per-task ``[B, out, in]`` weights."""
    if w.dim() == 2:
        return (d.reshape(-1, d.shape[-1]) @ w).view(*d.shape[:-1], w.shape[1])
    return torch.bmm(d, w)
