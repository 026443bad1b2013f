"""Plots of landscape and diagnose Datasets.

matplotlib is imported inside the functions; each takes ``ax=None`` (a new figure
when omitted), draws and returns the Axes; none calls ``plt.show()``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..runtime.atomic import save_figure

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.axes import Axes


def _axes(ax: Axes | None) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, new = plt.subplots(layout="constrained")
    return new


def plot_spectrum(ds: xr.Dataset, ax: Axes | None = None) -> Axes:
    """Top and bottom meta-Hessian eigenvalues against their rank (symlog y axis),
    with the residual norm as an error bar."""
    ax = _axes(ax)
    for end, marker in (("top", "o"), ("bottom", "s")):
        vals = ds["eigenvalue"].sel(end=end).values
        res = ds["residual"].sel(end=end).values
        ax.errorbar(np.arange(1, len(vals) + 1), vals, yerr=res, fmt=marker, ms=4,
                    label=end, capsize=2)
    mag = np.abs(ds["eigenvalue"].values)
    mag = mag[np.isfinite(mag) & (mag > 0)]
    if mag.size:  # linear only below the smallest magnitude shown
        ax.set_yscale("symlog", linthresh=max(float(mag.min()), 1e-12 * float(mag.max())))
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_xlabel("rank")
    ax.set_ylabel("meta-Hessian eigenvalue")
    ax.legend(title=f"trace {ds['trace'].item():.3g} ± {ds['trace_stderr'].item():.2g}")
    return ax


def plot_density(ds: xr.Dataset, ax: Axes | None = None) -> Axes:
    """The SLQ spectral density (log y axis)."""
    ax = _axes(ax)
    dens = ds["density"].values
    top = float(np.nanmax(dens)) if np.isfinite(dens).any() else 1.0
    ax.plot(ds["grid"].values, np.maximum(dens, top * 1e-7))
    ax.set_yscale("log")
    ax.set_ylim(top * 1e-6, top * 3)
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("spectral density (SLQ)")
    return ax


def plot_slices(ds: xr.Dataset, ax: Axes | None = None) -> Axes:
    """Post-adaptation query loss along the top and bottom eigenvectors."""
    ax = _axes(ax)
    radius = ds["radius"].values
    for end, style in (("top", "-"), ("bottom", "--")):
        loss = ds["slice_loss"].sel(end=end).values
        for j in range(loss.shape[0]):
            lam = float(ds["eigenvalue"].sel(end=end).values[j])
            ax.plot(radius, loss[j], style, label=f"{end} {j + 1} (λ={lam:.3g})")
    ax.set_yscale("log")
    ax.set_xlabel("step t along the eigenvector u (θ + t u)")
    ax.set_ylabel("query loss after adaptation")
    ax.legend(fontsize="small")
    return ax


def plot_stable_rates(ds: xr.Dataset, ax: Axes | None = None) -> Axes:
    """Histogram of the per-task stable inner rates 2/λ_max and the run's inner_lr."""
    ax = _axes(ax)
    rate = ds["stable_rate"].values
    finite = rate[np.isfinite(rate) & (rate > 0)]
    if finite.size:
        lo, hi = np.log10(finite.min()), np.log10(finite.max())
        bins = np.logspace(lo - 0.05, hi + 0.05, 20)
        ax.hist(finite, bins=list(bins))
        ax.set_xscale("log")
    ax.axvline(ds.attrs["inner_lr"], color="C3", label=f"inner_lr {ds.attrs['inner_lr']:g}")
    ax.set_xlabel("largest stable inner rate 2/λ_max")
    ax.set_ylabel("tasks")
    ax.legend()
    return ax


def _figure(fig, width: float):
    if fig is not None:
        return fig
    import matplotlib.pyplot as plt

    return plt.figure(figsize=(width, 4), layout="constrained")


def plot_landscape(ds: xr.Dataset, fig=None):
    """One figure (``fig``, or a new pyplot figure) with :func:`plot_spectrum`,
    :func:`plot_density`, :func:`plot_slices` and :func:`plot_stable_rates`."""
    fig = _figure(fig, 20)
    axes = fig.subplots(1, 4)
    plot_spectrum(ds, axes[0])
    plot_density(ds, axes[1])
    plot_slices(ds, axes[2])
    plot_stable_rates(ds, axes[3])
    fig.suptitle(f"{ds.attrs['family']} / {ds.attrs['regime']} / init {ds.attrs['init']}")
    return fig


def plot_diagnostics(ds: xr.Dataset, fig=None):
    """Adaptation error over training per regime (best held-out iteration marked),
    task-gradient coherence, and the support-swap ratio, in ``fig`` (or a new
    pyplot figure)."""
    fig = _figure(fig, 16)
    axes = fig.subplots(1, 3)
    it = ds["iteration"].values
    for r in ds["regime"].values:
        role = ds["role"].sel(regime=r).item()
        axes[0].plot(it, ds["post_mse"].sel(regime=r), marker="o", ms=3, label=f"{r} ({role})")
        axes[1].plot(it, ds["coherence"].sel(regime=r), marker="o", ms=3, label=str(r))
        axes[2].plot(it, ds["swap_ratio"].sel(regime=r), marker="o", ms=3, label=str(r))
    best = ds.attrs.get("recommended_stop", -1)
    if best >= 0:
        axes[0].axvline(best, color="0.4", ls=":", label=f"best held-out {best}")
    axes[0].set_yscale("log")
    axes[0].set_ylabel("query MSE after adaptation")
    axes[1].set_ylabel("task-gradient coherence (mean cosine)")
    axes[2].axhline(ds.attrs["swap_threshold"], color="C3", ls="--", label="flag below")
    axes[2].set_ylabel("support-swap MSE / own-support MSE")
    for ax in axes:
        ax.set_xlabel("meta-iteration")
        ax.legend(fontsize="small")
    fig.suptitle(f"{ds.attrs['family']} / init {ds.attrs['init']}: meta-overfitting")
    return fig


def render(draw, ds: xr.Dataset, path: Path, width: float) -> Path | None:
    """Draw ``draw(ds, fig)`` on a pyplot-free Figure and save it atomically as
    ``path`` (None, with a log line, when matplotlib is not installed)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        log.info("matplotlib not installed: no plot %s", path.name)
        return None
    fig = Figure(figsize=(width, 4), layout="constrained")
    draw(ds, fig)
    return save_figure(fig, path, dpi=110)


__all__ = ["plot_density", "plot_diagnostics", "plot_landscape", "plot_slices",
           "plot_spectrum", "plot_stable_rates", "render"]
