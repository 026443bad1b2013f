"""Hand-batched meta-loss for plain MLPs (the hot path of MAML on small networks).

For an ``nn.Sequential`` of ``Linear`` layers each followed by at most one
tanh/ReLU/SiLU/sine activation (or a :class:`~scimeta.nn.CoordinateMLP`, whose
fixed input map, Fourier features or periodic embedding, comes first), the per-task
forward pass is written with batched matrix products over the task dimension and
the inner gradient of the MSE loss by its analytic backward pass, in ordinary
differentiable torch ops. Autograd then
differentiates through those ops, so the meta-gradient is the same exact
second-order gradient as the generic ``torch.func`` path (the tests compare
both to round-off); it only saves the per-op overhead of the function
transforms, which dominates for tiny networks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import nn

from ..batch import TaskBatch
from ..typing import Params
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
    """h ``[B, N, in]`` times w ``[out, in]`` or ``[B, out, in]``, plus b, in one kernel."""
    if w.dim() == 2:
        flat = h.reshape(-1, h.shape[-1])
        z = flat @ w.t() if b is None else torch.addmm(b, flat, w.t())
        return z.view(*h.shape[:-1], w.shape[0])
    if b is None:
        return torch.bmm(h, w.mT)
    return torch.baddbmm(b.unsqueeze(-2), h, w.mT)


class SequentialPlan:
    """The layer list of an eligible MLP; build with :meth:`build` (None if ineligible)."""

    def __init__(self, layers: list[_Layer], affine: Rescaled | None = None,
                 embed: CoordinateMLP | None = None) -> None:
        self.layers = layers
        #: a :class:`~scimeta.nn.Rescaled` wrapper whose fixed maps surround the MLP
        self.affine = affine
        #: a :class:`~scimeta.nn.CoordinateMLP` whose fixed input map
        #: (:meth:`~scimeta.nn.CoordinateMLP.features`) feeds the first layer
        self.embed = embed

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
                       embed=inner.embed)
        embed = None
        if isinstance(model, nn.Sequential):
            seq, prefix = model, ""
        elif type(model) is CoordinateMLP and not model.context_dim:
            seq, prefix = model.net, "net."
            embed = model if model.embedding() is not None else None
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
        return cls(layers, embed=embed) if layers else None

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
        for layer in self.layers:
            z = _linear(h, p[layer.weight], None if layer.bias is None else p[layer.bias])
            if not cache:
                h = _activate_only(layer.act, z, layer.omega0)
                continue
            h_out, prime = _activate(layer.act, z, layer.omega0)
            out.append((h, prime))
            h = h_out
        if a is not None:
            h = h * a.y_scale + a.y_shift
        return h, out

    def grads(self, p: Mapping[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
              lowest: int, scaled: bool = True) -> Params:
        """Per-task gradients of the MSE, each ``[B, *shape]``, for layers >= ``lowest``.

        ``scaled=False`` leaves out the factor ``2 / (N d_out)`` (the caller folds it
        into the step size, saving one op).
        """
        pred, cache = self.forward(p, x)
        d = pred - y
        if self.affine is not None:  # chain rule through the fixed output map
            d = d * self.affine.y_scale
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
            g[layer.weight] = torch.bmm(d.mT, h_in)
            if layer.bias is not None:
                g[layer.bias] = d.sum(-2)
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
        return (pred - y).square().mean(dim=(-2, -1))

    def lowest(self, names: Iterable[str]) -> int:
        """Index of the first layer with a weight or bias among ``names``: the reverse
        pass stops there (ANIL adapts the head only)."""
        names = set(names)
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

        def grads(state: Params) -> tuple[Params, float]:
            src = {n: v.detach() for n, v in state.items()} if loop.first_order else state
            return self.grads(src, sx, sy, lowest, scaled=not fixed_lr), scale

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


def inner_states(loop: InnerLoop, p: Params, rates: Params,
                 grads: Callable[[Params], tuple[Params, float]],
                 steps: int | None = None) -> Iterator[Params]:
    """The hand-batched inner loop: the parameters after each of ``steps`` steps
    (default ``loop.steps``).

    ``grads(state)`` gives the support-loss gradients of the adapted parameters (each
    ``[B, *shape]``) and a factor on them; ``loop.rule`` takes the steps (one fused
    multi-tensor update for a fixed rate). Adapted entries become ``[B, *shape]`` at
    the first step; the others stay shared.
    """
    adapted = set(loop.adapted)
    names = [n for n in p if n in adapted]
    # the task dimension matters to a clipping rule only (whose norm is per task); a
    # rule without a clip keeps the plain update signature
    extra = {"task_dims": 1} if loop.rule.max_norm > 0 else {}
    state = dict(p)
    for k in range(loop.steps if steps is None else steps):
        g, scale = grads(state)
        state = {**state, **loop.rule.update({n: state[n] for n in names}, g, rates, k,
                                             grad_scale=scale, fused=not loop.rule.learned,
                                             **extra)}
        yield state


def unroll(loop: InnerLoop, p: Params, rates: Params,
           grads: Callable[[Params], tuple[Params, float]],
           query: Callable[[Params], torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """The inner loop of the hand-batched paths: per-task meta-objective ``[B]``.

    :func:`inner_states` takes the steps; ``query(state)`` is the per-task query
    loss, after the last step or weighted after each (MAML++'s multi-step loss).
    ``like``: a ``[B, ...]`` tensor whose dtype and device the all-zero-weights
    result takes.
    """
    state, terms, weights = dict(p), [], loop.step_weights
    for k, state in enumerate(inner_states(loop, p, rates, grads)):
        if weights is not None and weights[k] != 0:
            terms.append(weights[k] * query(state))
    if weights is None:
        return query(state)
    return torch.stack(terms).sum(0) if terms else like.new_zeros(like.shape[0])


def chunked_mean(task_losses: Callable[[TaskBatch], torch.Tensor], b: TaskBatch,
                 chunk_size: int | None) -> torch.Tensor:
    """Mean over the B tasks of ``task_losses(part)`` ``[b]``, ``chunk_size`` tasks at a
    time (all at once when None), like ``vmap``'s ``chunk_size``."""
    n = b.num_tasks
    step = chunk_size or n
    total = b.support_x.new_zeros(())
    for s in range(0, n, step):
        total = total + task_losses(b.tasks(slice(s, s + step))).sum()
    return total / n
