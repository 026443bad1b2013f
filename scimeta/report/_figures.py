"""The report's adaptation-curve figures: one PNG per evaluation, one panel per
test-time optimizer, drawn with :func:`scimeta.plot.curves.plot_adaptation`."""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import numpy as np

from ._collect import Evaluation


def have_matplotlib() -> bool:
    """Whether matplotlib can be imported (without importing it)."""
    return importlib.util.find_spec("matplotlib") is not None


def image_block(png: Path, doc_dir: Path, alt: str) -> tuple[str, str, str]:
    """The ``("img", src, alt)`` block of ``png``, linked relative to ``doc_dir``."""
    return ("img", Path(os.path.relpath(png, doc_dir)).as_posix(), alt)


def folder_tag(folder: Path) -> str:
    """A file-name prefix naming ``folder`` (its absolute path, runs of other
    characters as one ``-``, the last 60 characters), so that figures of results in
    different folders do not overwrite each other in one figure folder."""
    return re.sub(r"[^A-Za-z0-9]+", "-", str(folder.resolve())).strip("-")[-60:]


def adaptation_png(e: Evaluation, path: Path) -> Path:
    """Write the adaptation curves of evaluation ``e`` to ``path`` (PNG, Agg backend).

    Per optimizer, each init's median query MSE over the tasks that did not diverge
    by the largest budget, with its interquartile band, against the budget.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import xarray as xr

    from ..plot.curves import plot_adaptation

    with xr.open_dataset(e.path, engine="h5netcdf") as ds:
        mse = ds["query_mse"].load()
        inner_lr = ds.attrs.get("inner_lr")
    opts = [str(o) for o in mse["optimizer"].values]
    fig, axes = plt.subplots(1, len(opts), figsize=(4.8 * len(opts), 3.6),
                             layout="constrained", squeeze=False)
    try:
        for ax, opt in zip(axes[0], opts, strict=True):
            kept = []
            for init in mse["init"].values:
                curves = mse.sel(optimizer=opt, init=init)
                ok = np.isfinite(curves.values).all(axis=curves.dims.index("budget"))
                if not ok.any():
                    continue
                one = curves.isel(task=np.flatnonzero(ok)).rename(budget="step")
                plot_adaptation(one.expand_dims(init=[str(init)]).to_dataset(name="query_mse"),
                                ax=ax, support=e.support, inner_lr=inner_lr)
                kept.append(f"{init}: {int(ok.sum())}/{ok.size}")
            ax.set_title(f"{e.name}, {opt}", fontsize="medium")
            if kept:
                ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False,
                          fontsize="small", title_fontsize="small",
                          title="median, IQR band\ntasks not diverged:\n"
                          + "\n".join(kept))
        fig.savefig(path, dpi=90)
    finally:
        plt.close(fig)
    return path
