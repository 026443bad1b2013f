"""Curvature of a Gaussian likelihood on functional parameters (torch.func).

The likelihood is ``y[n, c] ~ N(f(x_n; φ)[c], σ_c²)`` with one noise scale per
output channel c. Its negative log-likelihood (NLL, in nats) is
``Σ_n Σ_c (y − f)² / (2σ_c²) + const``. Curvatures are over the flat vector of
the selected parameters (:class:`~scimeta.bayes.Flat`, P entries):

- ``full``: the generalized Gauss–Newton ``GGN = Σ_n J_nᵀ diag(1/σ²) J_n``,
  ``[P, P]``, with ``J_n = ∂f(x_n)/∂φ`` ``[C, P]``;
- ``diag``: its exact diagonal ``[P]``, from per-point Jacobians squared and
  summed chunk by chunk (the ``[P, P]`` matrix is never formed);
- ``kron``: K-FAC factors per ``nn.Linear`` layer (:mod:`._kron`);
- ``last-layer``: the full GGN of the last ``nn.Linear`` layer's weight and bias,
  every other parameter fixed;
- ``hessian``: the exact Hessian of the NLL ``[P, P]`` (small models only).

Every curvature is linear in the precisions ``1/σ_c²``; ``per_channel=True``
returns the unit-noise terms with a channel axis instead of their weighted sum.
Per-point Jacobians come from ``vmap(jacrev(...))`` over ``chunk_size`` points at a
time; ``batched=True`` maps the whole computation over tasks with ``vmap``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch
from torch import nn
from torch.func import functional_call, hessian, jacrev, vmap

from ..errors import ConfigError
from ..typing import ParamsLike
from ._flat import Flat, split_params

#: curvature structures, in the order error messages list them
STRUCTURES: tuple[str, ...] = ("full", "diag", "kron", "last-layer", "hessian")


def check_structure(structure: object) -> str:
    """``structure`` if known, else a ConfigError listing :data:`STRUCTURES`."""
    if structure not in STRUCTURES:
        raise ConfigError(f"structure={structure!r} is not allowed; "
                          f"valid structures: {', '.join(STRUCTURES)}")
    return str(structure)


def check_chunk(chunk_size: object) -> int | None:
    if chunk_size is None:
        return None
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ConfigError(f"chunk_size={chunk_size!r} is not allowed; use None or an int >= 1")
    return chunk_size


def noise_variance(noise_std: object, channels: int, like: torch.Tensor) -> torch.Tensor:
    """σ_c² ``[C]`` from a number or a ``[C]`` sequence of noise scales (> 0, units of y)."""
    s = torch.as_tensor(noise_std, dtype=like.dtype, device=like.device)
    if s.dim() == 0:
        s = s.expand(channels)
    if s.shape != (channels,) or not bool(torch.all(s > 0)) or not bool(torch.isfinite(s).all()):
        raise ConfigError(f"noise_std={noise_std!r} is not allowed; give a number > 0 or "
                          f"{channels} numbers > 0 (one per output channel)")
    return s.square()


def check_model(model: nn.Module) -> None:
    """Refuse models whose output at one point depends on the other points."""
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training:
            raise ConfigError(f"module {name!r} ({type(m).__name__}) is in training mode, so "
                              "its batch statistics couple the points; call model.eval()")


def point_chunks(n: int, chunk_size: int | None) -> Iterator[slice]:
    """Slices of ``range(n)`` of at most ``chunk_size`` (all at once for None)."""
    step = n if chunk_size is None else chunk_size
    for start in range(0, n, max(step, 1)):
        yield slice(start, min(start + step, n))


def model_fn(model: nn.Module, fixed: ParamsLike,
             flat: Flat) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``f(vec [P], x [N, d_in]) -> [N, C]``: the model with the flat params plugged in."""
    def f(vec: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, {**fixed, **flat.unflatten(vec)}, (x,))
        if out.dim() != 2:
            raise ConfigError(f"the model must map x [N, d_in] to [N, d_out]; got output "
                              f"shape {tuple(out.shape)}")
        return out
    return f


def point_jacobians(f: Callable, vec: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-point Jacobians ``[n, C, P]`` of ``f`` at ``vec`` for the points x ``[n, d_in]``."""
    def one(v: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        return f(v, xi.unsqueeze(0)).squeeze(0)
    return vmap(jacrev(one), in_dims=(None, 0))(vec, x)


def ggn_per_channel(f: Callable, vec: torch.Tensor, x: torch.Tensor, *, diagonal: bool,
                    chunk_size: int | None) -> torch.Tensor:
    """Unit-noise GGN per channel: ``[C, P, P]`` (``[C, P]`` if ``diagonal``)."""
    total = None
    for s in point_chunks(x.shape[0], chunk_size):
        j = point_jacobians(f, vec, x[s])
        part = (torch.einsum("ncp,ncp->cp", j, j) if diagonal
                else torch.einsum("ncp,ncq->cpq", j, j))
        total = part if total is None else total + part
    assert total is not None  # x has at least one point (checked by the caller)
    return total


def hessian_per_channel(f: Callable, vec: torch.Tensor, x: torch.Tensor,
                        y: torch.Tensor) -> torch.Tensor:
    """Exact Hessian ``[C, P, P]`` of ``½ Σ_n (y[n, c] − f(x_n)[c])²`` per channel c."""
    def half_sq(v: torch.Tensor) -> torch.Tensor:
        return 0.5 * (y - f(v, x)).square().sum(0)
    return hessian(half_sq)(vec)


def linear_layers(model: nn.Module, x_one: torch.Tensor) -> list[str]:
    """Names of the ``nn.Linear`` modules in the order one forward pass calls them.

    ``x_one`` ``[1, d_in]``; a layer called more than once is named in a ConfigError.
    """
    order: list[str] = []
    handles = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(
                lambda mod, inp, out, name=name: order.append(name)))
    try:
        with torch.no_grad():
            model(x_one)
    finally:
        for h in handles:
            h.remove()
    again = sorted({n for n in order if order.count(n) > 1})
    if again:
        raise ConfigError(f"nn.Linear layers {again} are called more than once per forward "
                          "pass; structure 'kron'/'last-layer' needs each layer used once")
    return order


def last_layer_names(model: nn.Module, x_one: torch.Tensor,
                     names: Iterable[str] | None = None) -> list[str]:
    """Parameter names (weight[, bias]) of the last ``nn.Linear`` layer called."""
    layers = linear_layers(model, x_one)
    if not layers:
        raise ConfigError("structure='last-layer' needs a model with an nn.Linear layer")
    last = dict(model.named_modules())[layers[-1]]
    prefix = f"{layers[-1]}." if layers[-1] else ""
    out = [prefix + n for n, _ in last.named_parameters(recurse=False)]
    if names is not None:
        chosen = set(names)
        out = [n for n in out if n in chosen]
        if not out:
            raise ConfigError(f"structure='last-layer': names selects no parameter of the "
                              f"last nn.Linear layer {layers[-1]!r}")
    return out


def curvature(model: nn.Module, params: ParamsLike, x: torch.Tensor,
              y: torch.Tensor | None = None, *, structure: str = "full",
              noise_std: object = 1.0, names: Iterable[str] | None = None,
              chunk_size: int | None = None, batched: bool = False,
              per_channel: bool = False):
    """Curvature of the Gaussian NLL at ``params`` on the points ``x``.

    x ``[N, d_in]`` (``[B, N, d_in]`` with ``batched=True``, params then ``[B, *shape]``);
    y ``[N, C]`` is needed by ``hessian`` only; ``noise_std`` σ a number or ``[C]``
    (units of y). Returns, for the flat vector of ``names`` (default: all model
    parameters; ``last-layer`` keeps those of the last Linear layer):
    ``full``/``hessian``/``last-layer`` ``[P, P]``, ``diag`` ``[P]``, ``kron`` a
    :class:`~scimeta.bayes.KronFactors`; with ``per_channel=True`` the unit-noise
    terms ``[C, ...]`` (G ``[C, out, out]`` for kron); a leading ``[B]`` when batched.
    Units: 1/(units of y)² times the units of ``∂f/∂φ`` squared.
    """
    from ._kron import KronFactors, kron_layout, kron_per_channel

    structure = check_structure(structure)
    chunk_size = check_chunk(chunk_size)
    check_model(model)
    rank = 3 if batched else 2
    if x.dim() != rank or x.shape[-2] < 1:
        raise ConfigError(f"x has shape {tuple(x.shape)}; expected "
                          f"{'[B, N, d_in]' if batched else '[N, d_in]'} with N >= 1")
    x_one = x.reshape(-1, x.shape[-1])[:1]
    if structure == "last-layer":
        names = last_layer_names(model, x_one, names)
    flat = Flat.of_model(model, names)
    fixed = split_params(params, flat, model)
    selected = {n: params[n] for n in flat.names}
    if structure == "hessian" and (y is None or y.dim() != rank):
        raise ConfigError("structure='hessian' needs y [N, C] ([B, N, C] when batched)")
    layout = kron_layout(model, flat, x_one) if structure == "kron" else None

    def one(sel, fx, xx, yy):
        if structure == "kron":
            return kron_per_channel(model, {**fx, **sel}, xx, layout, chunk_size)
        f = model_fn(model, fx, flat)
        vec = flat.flatten(sel)
        if structure == "hessian":
            return hessian_per_channel(f, vec, xx, yy)
        return ggn_per_channel(f, vec, xx, diagonal=structure == "diag", chunk_size=chunk_size)

    if batched:
        out = vmap(one, in_dims=(0, 0, 0, None if y is None else 0))(selected, fixed, x, y)
    else:
        out = one(selected, fixed, x, y)
    if structure == "kron" and layout is not None:
        factors = KronFactors.build(flat, layout, out, x.shape[-2])
        if per_channel:
            return factors
        channels = factors.layers[0].G.shape[-3]
        return factors.with_noise(noise_variance(noise_std, channels, x))
    channels = out.shape[-3] if structure != "diag" else out.shape[-2]
    if per_channel:
        return out
    w = 1.0 / noise_variance(noise_std, channels, x)
    if structure == "diag":
        return torch.einsum("c,...cp->...p", w, out)
    return torch.einsum("c,...cpq->...pq", w, out)


__all__ = ["STRUCTURES", "check_structure", "curvature", "ggn_per_channel",
           "hessian_per_channel", "last_layer_names", "linear_layers", "model_fn",
           "noise_variance", "point_chunks", "point_jacobians"]
