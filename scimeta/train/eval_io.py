"""Writing an evaluation: the Dataset atomically as netCDF, and its adaptation plot."""

from __future__ import annotations

import logging
from pathlib import Path

import xarray as xr

from ..runtime.atomic import save_figure, write_netcdf
from .run_dir import RunDir

log = logging.getLogger(__name__)


def write_evaluation(rd: RunDir, ds: xr.Dataset, label: str) -> Path:
    rd.evaluation.mkdir(exist_ok=True)
    path = rd.evaluation / f"{label}.nc"
    write_netcdf(ds, path)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from ..plot import plot_adaptation
    except ImportError:  # the plot module or matplotlib is missing
        log.info("matplotlib not installed: no plot for %s", label)
        return path
    opts = list(ds["optimizer"].values)
    fig, axes = plt.subplots(1, len(opts), figsize=(5.5 * len(opts), 3.5), squeeze=False)
    for ax, opt in zip(axes[0], opts, strict=True):
        curves = ds["query_mse"].sel(optimizer=opt).rename(budget="step")
        plot_adaptation(xr.Dataset({"query_mse": curves}), ax=ax)
        ax.set_title(f"{ds.attrs['family']} / {label} / {opt}")
    fig.tight_layout()
    save_figure(fig, rd.evaluation / f"{label}.png", dpi=120)
    plt.close(fig)
    return path
