"""Spectra of symmetric operators given by products: Lanczos eigenpairs, Hutchinson
trace, stochastic Lanczos quadrature (SLQ) density.

Every function takes an *operator*: a :class:`~scimeta.landscape.MetaHessian`, a
``scipy.sparse.linalg.LinearOperator``, or a dense symmetric matrix (numpy or
torch); arithmetic is float64 numpy.

- :func:`eigenpairs`: the k largest (``"top"``) or smallest (``"bottom"``)
  eigenpairs by implicitly restarted Lanczos (ARPACK ``eigsh``), each with its
  residual norm ``‖H u − λ u‖`` (u of unit norm) from one extra product.
- :func:`hutchinson`: ``tr H ≈ mean_j z_jᵀ H z_j`` over Rademacher probes z (±1
  entries), with the standard error of that mean; exact on a diagonal H.
- :func:`slq`: per probe, m Lanczos steps with full reorthogonalisation from
  ``z/‖z‖``; the tridiagonal's eigenvalues are the quadrature nodes and the squared
  first components of its eigenvectors the weights (they sum to 1 per probe).
  The density is the mean over probes of the weighted nodes, Gaussian-smoothed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError

log = logging.getLogger(__name__)

WHICH = ("top", "bottom")
METHODS = ("auto", "lanczos", "dense")


def as_operator(op: Any) -> tuple[int, Callable[[np.ndarray], np.ndarray]]:
    """(P, float64 matvec) of an operator (see the module docstring)."""
    from scipy.sparse.linalg import LinearOperator, aslinearoperator

    if hasattr(op, "as_linear_operator"):
        op = op.as_linear_operator()
    elif not isinstance(op, LinearOperator):
        if hasattr(op, "detach"):
            op = op.detach().cpu().double().numpy()
        arr = np.asarray(op, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
            raise ConfigError(f"op has shape {arr.shape}; expected a square matrix, a "
                              "LinearOperator or a MetaHessian")
        op = aslinearoperator(arr)
    n = int(op.shape[0])
    if op.shape != (n, n):
        raise ConfigError(f"op has shape {op.shape}; expected a square operator")
    return n, lambda x: np.asarray(op.matvec(np.asarray(x, dtype=np.float64)),
                                   dtype=np.float64).reshape(-1)


def check_k(k: object, dim: int) -> int:
    """``k`` if it is an int in [1, dim], else a ConfigError naming both."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= dim:
        raise ConfigError(f"k={k!r} is not allowed; it must be an int in [1, {dim}] (the "
                          "number of selected parameters)")
    return int(k)


def _check_count(name: str, value: object, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ConfigError(f"{name}={value!r} is not allowed; it must be an int >= {low}")
    return int(value)


@dataclass(frozen=True)
class Eigenpairs:
    """k eigenpairs from one end of a spectrum.

    ``values`` ``[k]`` (largest first for ``"top"``, smallest first for
    ``"bottom"``), ``vectors`` ``[P, k]`` (unit columns), ``residuals`` ``[k]``
    (``‖H u − λ u‖``), ``products``: operator products used, residuals included.
    """

    values: np.ndarray
    vectors: np.ndarray
    residuals: np.ndarray
    which: str
    products: int
    method: str


def eigenpairs(op: object, k: int = 10, which: str = "top", *, method: str = "auto",
               tol: float = 1e-10, maxiter: int | None = None, ncv: int | None = None,
               seed: int = 0) -> Eigenpairs:
    """The ``k`` largest (``which="top"``) or smallest (``"bottom"``) eigenpairs.

    ``method="lanczos"``: ARPACK ``eigsh`` (``which="LA"``/``"SA"``) with relative
    tolerance ``tol``, Krylov size ``ncv`` (default ``min(P, max(2k + 1, 20))``) and
    a start vector drawn from ``seed``; ``"dense"``: P products and
    ``numpy.linalg.eigh``; ``"auto"``: dense when ``k >= P - 1`` (ARPACK needs
    ``k < P``), Lanczos otherwise. Pairs that did not converge within
    ``maxiter`` are logged and returned as NaN.
    """
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

    n, mv = as_operator(op)
    k = check_k(k, n)
    if which not in WHICH:
        raise ConfigError(f"which={which!r} is not allowed; use one of {', '.join(WHICH)}")
    if method not in METHODS:
        raise ConfigError(f"method={method!r} is not allowed; use one of {', '.join(METHODS)}")
    if method == "auto":
        method = "dense" if k >= n - 1 else "lanczos"
    count = [0]

    def counted(x: np.ndarray) -> np.ndarray:
        count[0] += 1
        return mv(x)

    if method == "dense":
        mat = np.stack([counted(e) for e in np.eye(n)], 1)
        w, u = np.linalg.eigh(0.5 * (mat + mat.T))
        idx = np.argsort(w)[::-1][:k] if which == "top" else np.argsort(w)[:k]
        vals, vecs = w[idx], u[:, idx]
    else:
        if k >= n:
            raise ConfigError(f"k={k} is not allowed with method='lanczos'; ARPACK needs "
                              f"k < {n} (use method='dense')")
        lin = LinearOperator((n, n), matvec=counted, rmatvec=counted, dtype=np.float64)
        v0 = np.random.default_rng(seed).standard_normal(n)
        ncv = min(n, max(2 * k + 1, 20)) if ncv is None else ncv
        try:
            vals, vecs = eigsh(lin, k=k, which="LA" if which == "top" else "SA", tol=tol,
                               v0=v0, ncv=ncv, maxiter=maxiter)
        except ArpackNoConvergence as exc:
            got = len(exc.eigenvalues)
            log.warning("Lanczos (%s): %d of %d eigenpairs converged; the rest are NaN",
                        which, got, k)
            vals = np.full(k, np.nan)
            vecs = np.full((n, k), np.nan)
            vals[:got], vecs[:, :got] = exc.eigenvalues, exc.eigenvectors
        order = np.argsort(-vals if which == "top" else vals, kind="stable")
        vals, vecs = vals[order], vecs[:, order]
    residuals = np.array([np.linalg.norm(counted(vecs[:, j]) - vals[j] * vecs[:, j])
                          if np.isfinite(vals[j]) else np.nan for j in range(k)])
    return Eigenpairs(vals, vecs, residuals, which, count[0], method)


@dataclass(frozen=True)
class TraceEstimate:
    """Hutchinson estimate ``value ± stderr`` from ``samples`` ``[probes]`` of zᵀHz."""

    value: float
    stderr: float
    samples: np.ndarray


def hutchinson(op: object, probes: int = 20, *, seed: int = 0) -> TraceEstimate:
    """``tr H`` by Hutchinson's estimator with Rademacher probes (±1 entries).

    The standard error is ``std(samples, ddof=1) / sqrt(probes)`` (NaN for one
    probe). Unbiased; exact (zero spread) when H is diagonal.
    """
    n, mv = as_operator(op)
    probes = _check_count("probes", probes)
    rng = np.random.default_rng(seed)
    samples = np.empty(probes)
    for j in range(probes):
        z = rng.integers(0, 2, n).astype(np.float64) * 2 - 1
        samples[j] = float(z @ mv(z))
    se = float(samples.std(ddof=1) / np.sqrt(probes)) if probes > 1 else float("nan")
    return TraceEstimate(float(samples.mean()), se, samples)


def lanczos(mv: Callable[[np.ndarray], np.ndarray], v0: np.ndarray,
            steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(alpha ``[m]``, beta ``[m - 1]``, Q ``[P, m]``): ``m <= steps`` Lanczos steps
    from ``v0`` with full reorthogonalisation (twice per step); stops early at an
    invariant subspace (``m`` then is its dimension)."""
    n = v0.shape[0]
    steps = min(_check_count("steps", steps), n)
    q = np.asarray(v0, dtype=np.float64) / np.linalg.norm(v0)
    qs: list[np.ndarray] = [q]
    alpha: list[float] = []
    beta: list[float] = []
    for j in range(steps):
        w = mv(qs[j])
        a = float(qs[j] @ w)
        alpha.append(a)
        basis = np.stack(qs, 1)
        for _ in range(2):
            w = w - basis @ (basis.T @ w)
        b = float(np.linalg.norm(w))
        scale = max([abs(a), *beta, 1e-300])
        if j == steps - 1 or b <= 1e-12 * scale:
            break
        beta.append(b)
        qs.append(w / b)
    return np.array(alpha), np.array(beta), np.stack(qs, 1)


@dataclass(frozen=True)
class SpectralDensity:
    """Stochastic Lanczos quadrature of a P×P operator.

    ``nodes`` and ``weights`` ``[probes, steps]``: per probe, the Ritz values and
    the squared first components of the tridiagonal's eigenvectors (weights sum
    to 1 per probe; a probe that stopped early is padded with NaN nodes and zero
    weights).
    """

    nodes: np.ndarray
    weights: np.ndarray
    dim: int

    def trace(self) -> float:
        """``P · mean_probes Σ w θ`` (an estimate of tr H)."""
        return float(self.dim * np.nansum(self.nodes * self.weights, 1).mean())

    def default_sigma(self) -> float:
        """1 % of the spread of the nodes (a kernel width that resolves outliers)."""
        lo, hi = np.nanmin(self.nodes), np.nanmax(self.nodes)
        return float(max(hi - lo, abs(hi), 1e-30) * 0.01)

    def grid(self, points: int = 400, sigma: float | None = None) -> np.ndarray:
        """``points`` values from the smallest to the largest node, ± 4 σ."""
        s = self.default_sigma() if sigma is None else sigma
        return np.linspace(np.nanmin(self.nodes) - 4 * s, np.nanmax(self.nodes) + 4 * s, points)

    def density(self, grid: np.ndarray, sigma: float | None = None) -> np.ndarray:
        """The spectral density on ``grid``: Gaussian kernels of width ``sigma``
        (default :meth:`default_sigma`) at the nodes, weighted, averaged over probes;
        it integrates to 1."""
        s = self.default_sigma() if sigma is None else float(sigma)
        if not s > 0:
            raise ConfigError(f"sigma={sigma!r} is not allowed; it must be > 0")
        t = np.asarray(grid, dtype=np.float64)[:, None, None]
        ok = np.isfinite(self.nodes)
        nodes = np.where(ok, self.nodes, 0.0)
        kern = np.exp(-0.5 * ((t - nodes) / s) ** 2) / (s * np.sqrt(2 * np.pi))
        return (kern * np.where(ok, self.weights, 0.0)).sum(-1).mean(-1)


def slq(op: object, probes: int = 5, steps: int = 30, *, seed: int = 0) -> SpectralDensity:
    """Spectral density by stochastic Lanczos quadrature (Rademacher probes)."""
    n, mv = as_operator(op)
    probes = _check_count("probes", probes)
    steps = min(_check_count("steps", steps), n)
    rng = np.random.default_rng(seed)
    nodes = np.full((probes, steps), np.nan)
    weights = np.zeros((probes, steps))
    for j in range(probes):
        z = rng.integers(0, 2, n).astype(np.float64) * 2 - 1
        a, b, _ = lanczos(mv, z, steps)
        t = np.diag(a) + np.diag(b, 1) + np.diag(b, -1)
        theta, vecs = np.linalg.eigh(t)
        nodes[j, :len(a)] = theta
        weights[j, :len(a)] = vecs[0] ** 2
    return SpectralDensity(nodes, weights, n)


__all__ = ["METHODS", "WHICH", "Eigenpairs", "SpectralDensity", "TraceEstimate", "as_operator",
           "check_k", "eigenpairs", "hutchinson", "lanczos", "slq"]
