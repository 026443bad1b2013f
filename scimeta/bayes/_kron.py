"""K-FAC (Kronecker-factored GGN) for ``nn.Linear`` layers, on functional parameters.

For a Linear layer ``s = W a + b`` (W ``[out, in]``) write ``ā = [a, 1]`` (the 1
only when the bias is in the posterior) and ``g_{n,c} = ∂f_c(x_n)/∂s`` ``[out]``.
The exact GGN block of the augmented matrix ``[W | b]`` (row-major) is
``Σ_n Σ_c (g gᵀ/σ_c²) ⊗ (ā āᵀ)``; K-FAC replaces the sum of products by
``G ⊗ A`` with

- ``A = (1/N) Σ_n ā_n ā_nᵀ``            (mean over the N points),
- ``G = Σ_n Σ_c g_{n,c} g_{n,c}ᵀ / σ_c²``  (sum over points and channels),

which is exact for one point. ``a`` is caught by a forward hook on the layer and
``g`` is the Jacobian with respect to a zero offset the hook adds to ``s``, so the
model is called through ``functional_call`` and never copied. Layers must be
called once per forward pass, on inputs ``[N, in]``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

from ..errors import ConfigError
from ..typing import ParamsLike
from ._curvature import linear_layers, point_chunks
from ._flat import Flat


@dataclass(frozen=True)
class KronLayerSpec:
    """One K-FAC block: module name, its weight (and bias) parameter names, widths."""

    module: str
    weight: str
    bias: str | None
    in_features: int
    out_features: int

    @property
    def width(self) -> int:
        """Size of ā: ``in_features`` (+1 with the bias)."""
        return self.in_features + (self.bias is not None)

    def index_maps(self, flat: Flat) -> tuple[torch.Tensor, torch.Tensor]:
        """(positions in the flat vector, matching positions in row-major ``[W | b]``)."""
        w = self.width
        o = torch.arange(self.out_features)
        flat_idx = [torch.arange(flat.slice(self.weight).start, flat.slice(self.weight).stop)]
        aug_idx = [(o[:, None] * w + torch.arange(self.in_features)[None]).reshape(-1)]
        if self.bias is not None:
            sl = flat.slice(self.bias)
            flat_idx.append(torch.arange(sl.start, sl.stop))
            aug_idx.append(o * w + self.in_features)
        return torch.cat(flat_idx), torch.cat(aug_idx)


def kron_layout(model: nn.Module, flat: Flat, x_one: torch.Tensor) -> tuple[KronLayerSpec, ...]:
    """The K-FAC blocks covering every selected parameter, or a ConfigError naming one not."""
    modules = dict(model.named_modules())
    specs, covered = [], set()
    for name in linear_layers(model, x_one):
        m = modules[name]
        prefix = f"{name}." if name else ""
        w, b = prefix + "weight", (prefix + "bias" if m.bias is not None else None)
        if w in flat.names:
            b = b if b in flat.names else None
            specs.append(KronLayerSpec(name, w, b, m.in_features, m.out_features))
            covered.update({w, b} - {None})
        elif b in flat.names:
            raise ConfigError(f"structure='kron' needs the weight {w!r} selected with its "
                              f"bias {b!r}; add it to names or use structure='diag'")
    owner = {f"{k}.{n}" if k else n: type(m).__name__ for k, m in modules.items()
             for n, _ in m.named_parameters(recurse=False)}
    for n in flat.names:
        if n not in covered:
            raise ConfigError(
                f"structure='kron' covers the weights and biases of nn.Linear layers (each "
                f"called once) only; parameter {n!r} ({owner.get(n, '?')}) is not covered; "
                "use structure='diag' or 'full', or leave it out with names=")
    return tuple(specs)


#: per-point (ā ``[n, w]``, g ``[n, C, out]``) of one layer
PointTerms = tuple[torch.Tensor, torch.Tensor]


def kron_point_terms(model: nn.Module, params: ParamsLike, x: torch.Tensor,
                     layout: tuple[KronLayerSpec, ...],
                     chunk_size: int | None) -> Iterator[dict[str, PointTerms]]:
    """Per chunk of points, per layer: (ā ``[n, w]``, g ``[n, C, out]``) on x ``[N, d_in]``.

    ā is the layer's input (with a 1 appended when its bias is selected) and g the
    Jacobian of the model output with respect to the layer's pre-activation s.
    """
    modules = dict(model.named_modules())
    state: dict = {}

    def hook_for(spec: KronLayerSpec):
        def hook(mod, inp, out):
            a = inp[0]
            if a.dim() != 2 or a.shape[0] != 1:
                raise ConfigError(f"structure='kron': layer {spec.module!r} got input "
                                  f"{tuple(a.shape)} for one point; it needs [N, in]")
            state["acts"][spec.module] = a[0]
            return out + state["deltas"][spec.module]
        return hook

    def point(deltas, xi):
        state["deltas"], state["acts"] = deltas, {}
        out = functional_call(model, dict(params), (xi.unsqueeze(0),)).squeeze(0)
        return out, {k: state["acts"][k] for k in deltas}

    deltas = {s.module: x.new_zeros(s.out_features) for s in layout}
    handles = [modules[s.module].register_forward_hook(hook_for(s)) for s in layout]
    try:
        for sl in point_chunks(x.shape[0], chunk_size):
            jac, acts = vmap(jacrev(point, has_aux=True), in_dims=(None, 0))(deltas, x[sl])
            terms: dict[str, PointTerms] = {}
            for s in layout:
                a = acts[s.module]
                if s.bias is not None:
                    a = torch.cat([a, torch.ones_like(a[:, :1])], dim=-1)
                terms[s.module] = (a, jac[s.module])
            yield terms
    finally:
        for h in handles:
            h.remove()


def kron_per_channel(model: nn.Module, params: ParamsLike, x: torch.Tensor,
                     layout: tuple[KronLayerSpec, ...],
                     chunk_size: int | None) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    """Per layer (A ``[w, w]``, unit-noise G per channel ``[C, out, out]``) on x ``[N, d_in]``."""
    sums: dict[str, list] = {s.module: [0.0, 0.0] for s in layout}
    for terms in kron_point_terms(model, params, x, layout, chunk_size):
        for s in layout:
            a, g = terms[s.module]
            sums[s.module][0] = sums[s.module][0] + a.T @ a
            sums[s.module][1] = sums[s.module][1] + torch.einsum("nco,ncp->cop", g, g)
    return tuple((sums[s.module][0] / x.shape[0], sums[s.module][1]) for s in layout)


@dataclass(frozen=True)
class KronLayer:
    """A layer's factors: A ``[*lead, w, w]``, G ``[*lead, out, out]`` (``[*lead, C, ...]``
    per channel at unit noise)."""

    spec: KronLayerSpec
    A: torch.Tensor
    G: torch.Tensor


@dataclass(frozen=True)
class KronFactors:
    """K-FAC factors of every layer over the flat vector ``flat`` (N points)."""

    flat: Flat
    layers: tuple[KronLayer, ...]
    n_points: int
    per_channel: bool

    @classmethod
    def build(cls, flat: Flat, layout: tuple[KronLayerSpec, ...], out, n: int) -> KronFactors:
        layers = tuple(KronLayer(s, a, g) for s, (a, g) in zip(layout, out, strict=True))
        return cls(flat, layers, n, True)

    def with_noise(self, noise_var: torch.Tensor) -> KronFactors:
        """Factors with ``G = Σ_c G_c / σ_c²`` (from per-channel unit-noise ones)."""
        if not self.per_channel:
            return self
        w = 1.0 / noise_var
        layers = tuple(replace(L, G=torch.einsum("c,...cop->...op", w, L.G)) for L in self.layers)
        return replace(self, layers=layers, per_channel=False)

    def to_dense(self) -> torch.Tensor:
        """The block-diagonal ``[*lead, P, P]`` of the ``G ⊗ A`` blocks, flat order.

        Per-channel factors are summed at unit noise.
        """
        ref = self.layers[0].A
        lead = ref.shape[:-2]
        out = ref.new_zeros(*lead, self.flat.numel, self.flat.numel)
        for L in self.layers:
            G = L.G.sum(-3) if self.per_channel else L.G
            k = torch.einsum("...op,...ij->...oipj", G, L.A)
            n = G.shape[-1] * L.A.shape[-1]
            k = k.reshape(*lead, n, n)
            fi, ai = L.spec.index_maps(self.flat)
            out[..., fi[:, None], fi[None, :]] = k[..., ai[:, None], ai[None, :]]
        return out


def layer_prior(prior_diag: torch.Tensor, flat: Flat, spec: KronLayerSpec) -> torch.Tensor:
    """The layer's scalar prior precision; a ConfigError if it varies within the layer."""
    fi, _ = spec.index_maps(flat)
    vals = prior_diag[fi]
    if not bool(torch.all(vals == vals[0])):
        raise ConfigError(f"structure='kron' needs one prior precision per nn.Linear layer; "
                          f"layer {spec.module!r} has several (weight and bias differ?)")
    return vals[0]


def kron_logdet(factors: KronFactors, prior_diag: torch.Tensor, extra: float) -> torch.Tensor:
    """``log det(G ⊗ A + (τ_l + extra) I)`` summed over layers, differentiable in G and τ.

    Uses ``Σ_j log det(a_j G + τ I)`` over the eigenvalues a_j of A (Cholesky, no
    eigenvector derivatives). Raises a ConfigError when a block is not positive definite.
    """
    total = prior_diag.new_zeros(())
    for L in factors.layers:
        tau = layer_prior(prior_diag, factors.flat, L.spec) + extra
        a = torch.linalg.eigvalsh(L.A.detach()).clamp_min(0.0)
        eye = torch.eye(L.G.shape[-1], dtype=L.G.dtype, device=L.G.device)
        m = a[:, None, None] * L.G + tau * eye
        chol, info = torch.linalg.cholesky_ex(m)
        if bool((info > 0).any()):
            raise ConfigError(not_pd_message("kron", float(tau)))
        total = total + 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum()
    return total


def not_pd_message(structure: str, tau: float | None) -> str:
    now = "" if tau is None else f" (now {tau:g})"
    return (f"the posterior precision (structure={structure!r}) is not positive definite; "
            f"raise prior_precision{now}, or pass jitter > 0 to add jitter·I with a warning")


class KronSqrt:
    """Rows T ``[k, P]`` with ``Σ = Tᵀ T`` for a K-FAC posterior, built chunk by chunk.

    Per layer, eigendecompose A = U_A diag(a) U_Aᵀ and G = U_G diag(g) U_Gᵀ; the row
    for eigenpair (o, i) is ``(U_G[:, o] ⊗ U_A[:, i]) / sqrt(g_o a_i + τ)`` mapped
    from ``[W | b]`` order to the flat order.
    """

    def __init__(self, factors: KronFactors, prior_diag: torch.Tensor, extra: float) -> None:
        self.flat = factors.flat
        self.blocks = []
        for L in factors.layers:
            tau = float(layer_prior(prior_diag, self.flat, L.spec)) + extra
            a, ua = torch.linalg.eigh(L.A.detach())
            g, ug = torch.linalg.eigh(L.G.detach())
            lam = g.clamp_min(0.0)[:, None] * a.clamp_min(0.0)[None, :] + tau
            if not bool(torch.all(lam > 0)):
                raise ConfigError(not_pd_message("kron", tau))
            fi, ai = L.spec.index_maps(self.flat)
            self.blocks.append((ua, ug, lam.rsqrt().reshape(-1), fi, ai))
        self.n_rows = sum(b[2].numel() for b in self.blocks)

    def chunks(self, chunk_size: int) -> Iterator[torch.Tensor]:
        """Successive ``[k, P]`` row blocks (k <= chunk_size); together they are T."""
        for ua, ug, scale, fi, ai in self.blocks:
            w = ua.shape[0]
            for s in point_chunks(scale.numel(), chunk_size):
                idx = torch.arange(s.start, s.stop)
                rows_aug = torch.einsum("ko,ki->koi", ug[:, idx // w].T, ua[:, idx % w].T)
                rows_aug = rows_aug.reshape(len(idx), -1) * scale[idx, None]
                rows = scale.new_zeros(len(idx), self.flat.numel)
                rows[:, fi] = rows_aug[:, ai]
                yield rows

    def logdet(self) -> float:
        """log det of the posterior precision (sum of -2 log of the row scales)."""
        return float(sum(-2.0 * torch.log(b[2]).sum() for b in self.blocks))


__all__ = ["KronFactors", "KronLayer", "KronLayerSpec", "KronSqrt", "kron_layout",
           "kron_logdet", "kron_per_channel", "kron_point_terms", "layer_prior", "not_pd_message"]
