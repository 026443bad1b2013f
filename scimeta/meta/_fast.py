"""Hand-batched meta-loss for plain MLPs (the hot path of MAML on small networks).

For an ``nn.Sequential`` of ``Linear`` layers each followed by at most one
tanh/ReLU/SiLU/sine activation (or a :class:`~scimeta.nn.CoordinateMLP`, whose
fixed input map, Fourier features or periodic embedding, comes first, and whose
context vector c enters the first layer as a bias: W [φ(x); c] + b = W_x φ(x) +
(W_c c + b)), the per-task
forward pass is written with batched matrix products over the task dimension and
the inner gradient of the MSE loss by its analytic backward pass, in ordinary
differentiable torch ops. Autograd then
differentiates through those ops, so the meta-gradient is the same exact
second-order gradient as the generic ``torch.func`` path (the tests compare
both to round-off); it only saves the per-op overhead of the function
transforms, which dominates for tiny networks.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import nn

from ..batch import TaskBatch
from ..typing import Params
from ._hand_loop import chunked_mean, inner_states, unroll
from ._layouts import outer
from ._update import InnerLoop

if TYPE_CHECKING:
    from ..nn import CoordinateMLP, Rescaled


class _Layer(NamedTuple):
    weight: str
    bias: str | None
    act: str | None  # None, "relu", "tanh", "silu", "sine"
    omega0: float


def _act_kind(m: nn.Module) -> tuple[str, float] | None:
    from ..nn import Sine

    if isinstance(m, nn.ReLU):
        return "relu", 1.0
    if isinstance(m, nn.Tanh):
        return "tanh", 1.0
    if isinstance(m, nn.SiLU):
        return "silu", 1.0
    if isinstance(m, Sine):
        return "sine", m.omega0
    return None


def _activate(kind: str | None, z: torch.Tensor, om: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(act(z), act'(z)); the derivative is what autograd's own backward would use."""
    if kind is None:
        return z, torch.ones_like(z)
    if kind == "relu":
        h = torch.relu(z)
        return h, h  # the backward uses threshold_backward(d, h, 0), as autograd does
    if kind == "tanh":
        h = torch.tanh(z)
        return h, h  # the backward uses tanh_backward(d, h) = d (1 - h²), as autograd does
    if kind == "silu":
        s = torch.sigmoid(z)
        return z * s, s * (1 + z * (1 - s))
    return torch.sin(om * z), om * torch.cos(om * z)


def _activate_only(kind: str | None, z: torch.Tensor, om: float) -> torch.Tensor:
    """act(z) alone (a forward pass that needs no derivative factors)."""
    if kind is None:
        return z
    if kind == "relu":
        return torch.relu(z)
    if kind == "tanh":
        return torch.tanh(z)
    if kind == "silu":
        return torch.nn.functional.silu(z)
    return torch.sin(om * z)


def _linear(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """h ``[B, N, in]`` times w ``[out, in]`` or ``[B, out, in]``, plus b ``[out]`` or
    ``[B, out]``, in one kernel (two for shared w with a per-task b)."""
    if w.dim() == 2:
        flat = h.reshape(-1, h.shape[-1])
        if b is not None and b.dim() == 2:  # a per-task bias (a context's W_c c + b)
            return (flat @ w.t()).view(*h.shape[:-1], w.shape[0]) + b.unsqueeze(-2)
        z = flat @ w.t() if b is None else torch.addmm(b, flat, w.t())
        return z.view(*h.shape[:-1], w.shape[0])
    if b is None:
        return torch.bmm(h, w.mT)
    return torch.baddbmm(b.unsqueeze(-2), h, w.mT)


class SequentialPlan:
    """The layer list of an eligible MLP; build with :meth:`build` (None if ineligible)."""

    def __init__(self, layers: list[_Layer], affine: Rescaled | None = None,
                 embed: CoordinateMLP | None = None, context: str | None = None,
                 context_dim: int = 0) -> None:
        self.layers = layers
        #: a :class:`~scimeta.nn.Rescaled` wrapper whose fixed maps surround the MLP
        self.affine = affine
        #: a :class:`~scimeta.nn.CoordinateMLP` whose fixed input map
        #: (:meth:`~scimeta.nn.CoordinateMLP.features`) feeds the first layer
        self.embed = embed
        #: the name of a context vector ``[d]`` appended to the first layer's input
        #: (:attr:`~scimeta.nn.CoordinateMLP.context_dim`), or None
        self.context = context
        self.context_dim = context_dim
        #: the loss is :class:`~._tasks.ScaledMSE` of :attr:`affine`: errors in units
        #: of its output scale (set by the learner)
        self.scaled_error = False

    @classmethod
    def build(cls, model: nn.Module) -> SequentialPlan | None:
        from ..nn import CoordinateMLP, Rescaled

        if type(model) is Rescaled:
            inner = cls.build(model.net)
            if inner is None:
                return None
            prefix = "net."
            return cls([_Layer(prefix + lay.weight,
                               None if lay.bias is None else prefix + lay.bias,
                               lay.act, lay.omega0) for lay in inner.layers], affine=model,
                       embed=inner.embed,
                       context=None if inner.context is None else prefix + inner.context,
                       context_dim=inner.context_dim)
        embed, context, context_dim = None, None, 0
        if isinstance(model, nn.Sequential):
            seq, prefix = model, ""
        elif type(model) is CoordinateMLP:
            seq, prefix = model.net, "net."
            embed = model if model.embedding() is not None else None
            context_dim = model.context_dim
            context = "context" if context_dim else None
        else:
            return None
        if any(True for _ in seq.buffers()):
            return None
        layers: list[_Layer] = []
        mods = list(seq.named_children())
        i = 0
        while i < len(mods):
            name, m = mods[i]
            if type(m) is not nn.Linear:
                return None
            act = _act_kind(mods[i + 1][1]) if i + 1 < len(mods) else None
            bias = f"{prefix}{name}.bias" if m.bias is not None else None
            layers.append(_Layer(f"{prefix}{name}.weight", bias,
                                 act[0] if act else None, act[1] if act else 1.0))
            i += 2 if act else 1
        if not layers:
            return None
        return cls(layers, embed=embed, context=context, context_dim=context_dim)

    def first_layer(self, p: Mapping[str, torch.Tensor]
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(weight, bias) that act on :meth:`inputs` in the first layer: with a context,
        W_x ``[.., out, in]`` and W_c c + b ``[.., out]`` (c ``[d]`` or ``[B, d]``)."""
        lay = self.layers[0]
        w, b = p[lay.weight], None if lay.bias is None else p[lay.bias]
        if self.context is None:
            return w, b
        wx, wc = self._split_first(w)
        cb = (wc @ p[self.context].unsqueeze(-1)).squeeze(-1)
        return wx, cb if b is None else b + cb

    def _split_first(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The first weight's columns on the inputs (W_x) and on the context (W_c)."""
        split = w.shape[-1] - self.context_dim
        return w[..., :split], w[..., split:]

    def layer_params(self, p: Mapping[str, torch.Tensor], i: int
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(weight, bias) of layer ``i`` as it acts on its input rows."""
        if i == 0:
            return self.first_layer(p)
        lay = self.layers[i]
        return p[lay.weight], None if lay.bias is None else p[lay.bias]

    def finish_first(self, p: Mapping[str, torch.Tensor], g: Params,
                     dz_sum: torch.Tensor, only: Collection[str] | None = None) -> None:
        """Complete the first layer's gradients in ``g`` when a context is present:
        ``g[weight]`` (if there) holds the W_x part ``[B, out, in]``; dz_sum ``[B, out]``
        is the first pre-activation's cotangent summed over points (the bias's
        gradient). Adds the W_c columns (dz_sum ⊗ c) and, if wanted (``only``: the
        names wanted, None: all), the context's gradient W_cᵀ dz_sum."""
        if self.context is None:
            return
        lay, c = self.layers[0], p[self.context]
        _, wc = self._split_first(p[lay.weight])
        if lay.weight in g:
            gwc = dz_sum.unsqueeze(-1) * c.unsqueeze(-2)
            gw = g[lay.weight]
            g[lay.weight] = torch.cat([gw, gwc.expand(*gw.shape[:-1], gwc.shape[-1])],
                                      dim=-1)
        if only is None or self.context in only:
            g[self.context] = (dz_sum.unsqueeze(-2) @ wc).squeeze(-2)

    def _wants_sum(self, i: int, only: Collection[str] | None) -> bool:
        """Whether layer ``i``'s summed cotangent is needed (its bias, or the context)."""
        lay = self.layers[i]
        if only is None:
            return lay.bias is not None or (i == 0 and self.context is not None)
        return lay.bias in only or (i == 0 and self.context is not None
                                    and (self.context in only or lay.weight in only))

    def put_layer_grads(self, p: Mapping[str, torch.Tensor], g: Params, i: int,
                        dz: torch.Tensor, rows: torch.Tensor,
                        only: Collection[str] | None,
                        streams: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        """Layer ``i``'s gradients into ``g``, of the names in ``only`` (None: all):
        its weight's, dzᵀ rows (cotangents ``[B, N, out]`` of its pre-activations at its
        input rows ``[B, N, in]``; plus dz_sᵀ s for derivative ``streams`` (dz_s, s) of
        the written-out physics gradient), its bias's, dz summed over points (streams
        carry no bias), and for the first layer the context's columns and vector
        (:meth:`finish_first`)."""
        lay = self.layers[i]
        if only is None or lay.weight in only:
            gw = outer(dz, rows)
            g[lay.weight] = gw if streams is None else gw + outer(*streams)
        if self._wants_sum(i, only):
            dsum = dz.sum(-2)
            if lay.bias is not None and (only is None or lay.bias in only):
                g[lay.bias] = dsum
            if i == 0:
                self.finish_first(p, g, dsum, only)

    def affine_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """x ``[..., d_in]`` through the affine input map of :attr:`affine` (if any)."""
        a = self.affine
        return x if a is None else x * a.x_scale + a.x_shift

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """The first layer's input: x ``[..., d_in]`` through the fixed input maps."""
        h = self.affine_inputs(x)
        return h if self.embed is None else self.embed.features(h)

    def forward(self, p: Mapping[str, torch.Tensor], x: torch.Tensor, *,
                cache: bool = True,
                ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """x ``[B, N, d_in]``; weights ``[out, in]`` (shared) or ``[B, out, in]``.

        Returns the output and, per layer, (its input, what :meth:`grads` needs of its
        activation's derivative); ``cache=False`` (a forward whose gradient is left to
        autograd) skips the derivative factors and returns an empty list."""
        out = []
        a = self.affine
        h = self.inputs(x)
        for i, layer in enumerate(self.layers):
            z = _linear(h, *self.layer_params(p, i))
            if not cache:
                h = _activate_only(layer.act, z, layer.omega0)
                continue
            h_out, prime = _activate(layer.act, z, layer.omega0)
            out.append((h, prime))
            h = h_out
        if a is not None:
            h = h * a.y_scale + a.y_shift
        return h, out

    def error(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """pred − y, divided by the output scale when :attr:`scaled_error`."""
        e = pred - y
        return e / self.affine.y_scale if self.scaled_error and self.affine is not None else e

    def grads(self, p: Mapping[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
              lowest: int, scaled: bool = True,
              only: Collection[str] | None = None) -> Params:
        """Per-task gradients of the MSE, each ``[B, *shape]``, for layers >= ``lowest``
        (of the names in ``only`` when given: CAVIA's context alone skips the weights').

        ``scaled=False`` leaves out the factor ``2 / (N d_out)`` (the caller folds it
        into the step size, saving one op).
        """
        pred, cache = self.forward(p, x)
        d = self.error(pred, y)
        if self.affine is not None and not self.scaled_error:
            d = d * self.affine.y_scale  # chain rule through the fixed output map
        # (a scaled error (pred − y)/s = h − (y − shift)/s has unit slope in h)
        if scaled:
            d = (2.0 / (pred.shape[-2] * pred.shape[-1])) * d
        g: Params = {}
        for i in range(len(self.layers) - 1, lowest - 1, -1):
            layer = self.layers[i]
            h_in, prime = cache[i]
            if layer.act == "relu":
                d = torch.ops.aten.threshold_backward(d, prime, 0.0)
            elif layer.act == "tanh":
                d = torch.ops.aten.tanh_backward(d, prime)
            elif layer.act is not None:
                d = d * prime
            self.put_layer_grads(p, g, i, d, h_in, only)
            if i > lowest:
                w = p[layer.weight]
                if w.dim() == 2:  # shared weights: one matrix product for all tasks
                    d = (d.reshape(-1, d.shape[-1]) @ w).view(*d.shape[:-1], w.shape[1])
                else:
                    d = torch.bmm(d, w)
        return g

    def task_mse(self, p: Mapping[str, torch.Tensor], x: torch.Tensor,
                 y: torch.Tensor) -> torch.Tensor:
        """Per-task MSE ``[B]``."""
        pred, _ = self.forward(p, x, cache=False)
        return self.error(pred, y).square().mean(dim=(-2, -1))

    def lowest(self, names: Iterable[str]) -> int:
        """Index of the first layer with a weight or bias among ``names``: the reverse
        pass stops there (ANIL adapts the head only)."""
        names = set(names)
        if self.context in names:
            return 0
        return min(i for i, lay in enumerate(self.layers)
                   if lay.weight in names or lay.bias in names)

    def task_losses(self, loop: InnerLoop, p: Params, rates: Params, sx: torch.Tensor,
                    sy: torch.Tensor, qx: torch.Tensor, qy: torch.Tensor) -> torch.Tensor:
        """Per-task query MSE ``[B]`` after ``loop`` on the support sets (x ``[B, K, d]``).

        The same inner loop as :meth:`MAML.inner_loop <scimeta.meta.MAML.inner_loop>`:
        the update is ``loop.rule``; only the gradient is computed by hand.
        """
        return unroll(loop, p, rates, self._support_step(loop, sx, sy),
                      lambda state: self.task_mse(state, qx, qy), sx)

    def _support_step(self, loop: InnerLoop, sx: torch.Tensor,
                      sy: torch.Tensor) -> Callable[[Params], tuple[Params, float]]:
        """``grads(state)`` for :func:`inner_states`: the support MSE's gradients of the
        adapted layers (detached when first-order) and the factor on them."""
        lowest = self.lowest(loop.adapted)
        fixed_lr = not loop.rule.learned
        # fixed rate: the MSE factor 2 / (K d_out) is folded into the fused update
        scale = 2.0 / (sy.shape[-2] * sy.shape[-1]) if fixed_lr else 1.0

        only = frozenset(loop.adapted)

        def grads(state: Params) -> tuple[Params, float]:
            src = {n: v.detach() for n, v in state.items()} if loop.first_order else state
            return self.grads(src, sx, sy, lowest, scaled=not fixed_lr, only=only), scale

        return grads

    def meta_loss(self, loop: InnerLoop, p: Params, rates: Params, b: TaskBatch,
                  chunk_size: int | None = None) -> torch.Tensor:
        """Mean over tasks of the query MSE after adaptation (chunked like ``vmap``)."""
        return chunked_mean(lambda part: self.task_losses(
            loop, p, rates, part.support_x, part.support_y, part.query_x, part.query_y),
            b, chunk_size)

    def adapt(self, loop: InnerLoop, p: Params, rates: Params, sx: torch.Tensor,
              sy: torch.Tensor, steps: int) -> Params:
        """Model parameters after ``steps`` steps of ``loop`` on the support sets
        (x ``[B, K, d]``), each ``[B, *shape]``; the same updates as :meth:`task_losses`."""
        state = dict(p)
        for after in inner_states(loop, p, rates, self._support_step(loop, sx, sy), steps):
            state = after
        b = sx.shape[0]
        return {n: v if v.dim() > p[n].dim() else v.expand(b, *v.shape)
                for n, v in state.items()}
