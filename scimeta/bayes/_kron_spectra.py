"""Batched K-FAC terms and the spectra of the factors, over a leading task axis B.

Per ``nn.Linear`` layer, the K-FAC factors of N points are ``A = (1/N) Σ_n ā_n ā_nᵀ``
(``[w, w]``, rank ≤ N) and ``G = Σ_{n,c} g_{n,c} g_{n,c}ᵀ / σ_c²`` (``[out, out]``, rank
≤ N·C). Few support points make both low rank, so each is decomposed through the
smaller of itself and its Gram matrix, and only its range is kept as (eigenvalues e
``[B, r]``, rows R ``[B, r, n]`` with ``F = Rᵀ R`` and ``R Rᵀ = diag(e)``, i.e. rows
``√e_k u_kᵀ``); the other ``n − r`` eigenvalues are 0.

For G inside the evidence fit, G(σ) changes with σ and is re-decomposed every iteration:
from ``M = W^½ K W^½`` (``K[(n,c),(m,d)] = g_{n,c}·g_{m,d}``, ``W = diag(1/σ_c²)``),
whose eigenvalues are G's nonzero ones, and for an eigenvector ``v_o`` of M,
``u_oᵀ G_c u_o = g_o σ_c² Σ_n v_o[(n,c)]²`` and ``√g_o u_o = Jᵀ W^½ v_o`` (J the
``[N·C, out]`` rows g_{n,c}): exact, and no division by small eigenvalues.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.func import vmap

from ..typing import ParamsLike
from ._kron import KronLayerSpec, kron_point_terms

#: per layer: (ā ``[B, N, w]``, g ``[B, N, C, out]``)
Terms = tuple[tuple[torch.Tensor, torch.Tensor], ...]


def batch_terms(model: nn.Module, params: ParamsLike, x: torch.Tensor,
                layout: tuple[KronLayerSpec, ...], chunk_size: int | None) -> Terms:
    """Per layer (ā ``[B, N, w]``, g ``[B, N, C, out]``) for params ``[B, *shape]``, x
    ``[B, N, d_in]``: :func:`~scimeta.bayes._kron.kron_point_terms` vmapped over tasks."""
    def one(p, xx):
        chunks = list(kron_point_terms(model, p, xx, layout, chunk_size))
        if len(chunks) == 1:
            return tuple(chunks[0][s.module] for s in layout)
        return tuple((torch.cat([c[s.module][0] for c in chunks]),
                      torch.cat([c[s.module][1] for c in chunks])) for s in layout)
    return vmap(one)(dict(params), x)


def a_spectrum(a_terms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(a ``[B, r]`` ≥ 0, R_A ``[B, r, w]``) with ``A = (1/N) Σ_n ā_n ā_nᵀ = R_Aᵀ R_A`` and
    ``R_A R_Aᵀ = diag(a)`` (rows ``√a_i e_iᵀ``): from the ``[N, N]`` Gram matrix when
    N < w (then ``w − r`` further zero eigenvalues), else from A. ā ``[B, N, w]``."""
    n, w = a_terms.shape[-2:]
    if n < w:
        a, v = torch.linalg.eigh(a_terms @ a_terms.transpose(-1, -2) / n)
        return a.clamp_min(0.0), v.transpose(-1, -2) @ a_terms / math.sqrt(n)
    a, u = torch.linalg.eigh(a_terms.transpose(-1, -2) @ a_terms / n)
    a = a.clamp_min(0.0)
    return a, u.transpose(-1, -2) * a.sqrt()[..., None]


def unit_gram(g_terms: torch.Tensor) -> torch.Tensor:
    """What :func:`g_spectrum` decomposes, at unit noise: the Gram matrix
    ``K[(n,c),(m,d)] = g_{n,c}·g_{m,d}`` ``[B, N·C, N·C]`` when N·C < out, else the
    per-channel factors ``G_c = Σ_n g_{n,c} g_{n,c}ᵀ`` ``[B, C, out, out]``."""
    B, n, C, out = g_terms.shape
    if n * C < out:
        j = g_terms.reshape(B, n * C, out)
        return j @ j.transpose(-1, -2)
    return torch.einsum("bnco,bncp->bcop", g_terms, g_terms)


def g_spectrum(gram: torch.Tensor,
               s2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(g ``[B, r]`` ≥ 0, eigenvectors, h ``[B, C, r]``) of ``G = Σ_{n,c} g gᵀ/σ_c²`` from
    :func:`unit_gram`: ``h_{c,o} = u_oᵀ G_c u_o`` (G_c at unit noise). From the Gram
    matrix, ``M = W^½ K W^½`` (W = diag(1/σ_c²)) has G's nonzero eigenvalues and, for its
    eigenvector v_o, ``h_{c,o} = g_o σ_c² Σ_n v_o[(n,c)]²``; the eigenvectors are v (of
    M) there, else U_G. σ² ``[C]``."""
    C = s2.shape[0]
    if gram.dim() == 3:
        w_half = s2.rsqrt().repeat(gram.shape[-1] // C)                # [(n, c)]
        g, v = torch.linalg.eigh(w_half[:, None] * gram * w_half)
        g = g.clamp_min(0.0)
        h = g[:, None, :] * s2[:, None] * v.square().unflatten(1, (-1, C)).sum(1)
        return g, v, h
    g, u = torch.linalg.eigh(torch.einsum("c,bcop->bop", 1.0 / s2, gram))
    return g.clamp_min(0.0), u, torch.einsum("bpo,bcpq,bqo->bco", u, gram, u)


def g_rows(g_terms: torch.Tensor, s2: torch.Tensor, g: torch.Tensor,
           vecs: torch.Tensor) -> torch.Tensor:
    """R_G ``[B, r, out]`` with ``G = R_Gᵀ R_G`` and ``R_G R_Gᵀ = diag(g)`` (rows
    ``√g_o u_oᵀ``), from :func:`g_spectrum`'s eigenvectors: ``vᵀ W^½ J`` (Gram) or
    ``diag(√g) U_Gᵀ``."""
    B, n, C, out = g_terms.shape
    if n * C < out:
        return vecs.transpose(-1, -2) @ (g_terms * s2.rsqrt()[:, None]).reshape(B, n * C, out)
    return vecs.transpose(-1, -2) * g.sqrt()[..., None]


__all__ = ["Terms", "a_spectrum", "batch_terms", "g_rows", "g_spectrum", "unit_gram"]
