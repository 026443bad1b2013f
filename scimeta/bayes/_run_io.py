"""The Dataset of :func:`~scimeta.bayes.posterior`, its atomic write and its plots."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from ..runtime.atomic import save_figure, write_netcdf
from . import metrics

log = logging.getLogger(__name__)

#: interval levels of the pooled calibration curves
CURVE_LEVELS = tuple(float(v) for v in np.round(np.linspace(0.05, 0.95, 19), 2))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _scores(prefix: str, y: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> dict:
    """NLL, CRPS ``(task)``, coverage ``(level, task)`` and the pooled curve ``(clevel)``."""
    var = var.expand_as(mean)
    s = metrics.summary(y, mean, var, per_task=True)
    cov = metrics.coverage(y, mean, var, metrics.LEVELS, per_task=True)
    _, curve = metrics.calibration_curve(y, mean, var, CURVE_LEVELS)
    return {
        f"{prefix}nll": (("task",), _np(s["nll"]), {
            "long_name": "Gaussian NLL per query value", "units": "nats"}),
        f"{prefix}crps": (("task",), _np(s["crps"]), {
            "long_name": "CRPS per query value", "units": "state units"}),
        f"{prefix}coverage": (("level", "task"), _np(cov.T), {
            "long_name": "fraction of query values inside the central interval"}),
        f"{prefix}calibration": (("clevel",), _np(curve), {
            "long_name": "observed coverage over all tasks (pooled)"}),
    }


def build_dataset(*, batch, reader, n: int, mean: torch.Tensor, var_f: torch.Tensor,
                  var_y: torch.Tensor, base_var: torch.Tensor, oracle_var: torch.Tensor,
                  noise_var: torch.Tensor, tau: torch.Tensor, log_z: torch.Tensor,
                  attrs: dict) -> xr.Dataset:
    """Assemble the result of :func:`~scimeta.bayes.posterior`.

    Args:
        batch: the TaskBatch of the B = ``n`` tasks (query ``[B, Q, d_in]``, ``[B, Q, C]``).
        reader: the store's TaskReader (task ids, channel names, parameters).
        mean, var_f, var_y: the Laplace predictive ``[B, Q, C]`` (state units, squared).
        base_var, oracle_var: the point estimate's noise variance ``[C]`` fitted on the
            support residuals / on the query residuals.
        noise_var: the posterior's σ² ``[C]``; tau: prior precision ``[B]``;
            log_z: Laplace log evidence ``[B]`` (nats).
        attrs: Dataset attributes.

    Returns:
        The Dataset (see :func:`~scimeta.bayes.posterior`).
    """
    qy = batch.query_y
    channels = list(reader.meta.state_names)
    inputs = ["t", *reader.meta.space_dims]
    data = {
        "pred_mean": (("task", "point", "channel"), _np(mean), {
            "long_name": "predictive mean f(x; phi)", "units": "state units"}),
        "pred_std": (("task", "point", "channel"), _np(var_y.sqrt()), {
            "long_name": "predictive standard deviation of y (Laplace, with noise)",
            "units": "state units"}),
        "pred_std_f": (("task", "point", "channel"), _np(var_f.sqrt()), {
            "long_name": "predictive standard deviation of f (parameter uncertainty only)",
            "units": "state units"}),
        "query_y": (("task", "point", "channel"), _np(qy), {"long_name": "truth"}),
        "query_x": (("task", "point", "input"), _np(batch.query_x)),
        "support_x": (("task", "support", "input"), _np(batch.support_x)),
        "support_y": (("task", "support", "channel"), _np(batch.support_y)),
        "noise_std": (("channel",), _np(noise_var.sqrt()), {
            "long_name": "fitted observation noise (Laplace evidence)",
            "units": "state units"}),
        "prior_precision": (("task",), _np(tau), {
            "long_name": "fitted prior precision tau of N(theta, 1/tau I)",
            "units": "1/(parameter units)^2"}),
        "log_evidence": (("task",), _np(log_z), {
            "long_name": "Laplace log marginal likelihood of the support set",
            "units": "nats"}),
        "base_noise_std": (("channel",), _np(base_var.sqrt()), {
            "long_name": "point estimate's noise, fitted on the support residuals",
            "units": "state units"}),
        "oracle_noise_std": (("channel",), _np(oracle_var.sqrt()), {
            "long_name": "point estimate's noise, fitted on the query residuals",
            "units": "state units"}),
        "params": (("task", "param"), reader.params[:n]),
    }
    data.update(_scores("", qy, mean, var_y))
    data.update(_scores("base_", qy, mean, base_var))
    data.update(_scores("oracle_", qy, mean, oracle_var))
    return xr.Dataset(
        data,
        coords={"task": reader.tasks[:n].astype(np.int64), "channel": channels,
                "input": inputs, "level": list(metrics.LEVELS), "clevel": list(CURVE_LEVELS),
                "param": list(reader.meta.param_names)},
        attrs=attrs,
    )


def plot_bands(ds: xr.Dataset, task: int = 0, channel: int = 0, ax=None):
    """One task's predictive mean with 50 % and 90 % bands, the truth and the support.

    Args:
        ds: a :func:`~scimeta.bayes.posterior` Dataset.
        task, channel: positions along ``task`` and ``channel``.
        ax: a matplotlib Axes (default: the current one).

    Returns:
        The Axes. One input (t): against t, sorted; several (PDEs): the prediction with
        its 90 % interval against the truth at each query point.
    """
    import matplotlib.pyplot as plt

    ax = ax or plt.gca()
    if ds.sizes["input"] > 1:
        y = ds["query_y"].values[task, :, channel]
        m = ds["pred_mean"].values[task, :, channel]
        s = ds["pred_std"].values[task, :, channel]
        ax.errorbar(y, m, yerr=1.645 * s, fmt="o", ms=2, lw=0.6, color="C0",
                    label="mean, 90 %")
        lim = [float(min(y.min(), m.min())), float(max(y.max(), m.max()))]
        ax.plot(lim, lim, color="k", lw=0.8, label="truth = prediction")
        ax.set_xlabel(f"true {ds['channel'].values[channel]}")
        ax.set_ylabel(f"predicted {ds['channel'].values[channel]}")
        return ax
    x = ds["query_x"].values[task, :, 0]
    order = np.argsort(x, kind="stable")
    x = x[order]
    m = ds["pred_mean"].values[task, order, channel]
    s = ds["pred_std"].values[task, order, channel]
    for z, alpha, lab in ((1.645, 0.2, "90 %"), (0.674, 0.4, "50 %")):
        ax.fill_between(x, m - z * s, m + z * s, alpha=alpha, color="C0", lw=0, label=lab)
    ax.plot(x, m, color="C0", lw=1, label="mean")
    ax.plot(x, ds["query_y"].values[task, order, channel], ".", color="k", ms=3,
            label="truth")
    ax.plot(ds["support_x"].values[task, :, 0], ds["support_y"].values[task, :, channel],
            "o", color="C3", ms=4, label="support")
    ax.set_xlabel(str(ds["input"].values[0]))
    ax.set_ylabel(str(ds["channel"].values[channel]))
    return ax


def plot_calibration(ds: xr.Dataset, ax=None):
    """Observed vs nominal coverage (pooled): Laplace and the point estimate's bands.

    Args:
        ds: a :func:`~scimeta.bayes.posterior` Dataset.
        ax: a matplotlib Axes (default: the current one).

    Returns:
        The Axes.
    """
    import matplotlib.pyplot as plt

    ax = ax or plt.gca()
    lv = ds["clevel"].values
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--")
    ax.plot(lv, ds["calibration"].values, "o-", ms=3, label="Laplace")
    ax.plot(lv, ds["base_calibration"].values, "s-", ms=3, label="point + fitted noise")
    ax.set_xlabel("nominal coverage")
    ax.set_ylabel("observed coverage")
    ax.legend(fontsize=8)
    return ax


def write_posterior(folder: Path, ds: xr.Dataset, label: str, n_tasks: int = 3) -> Path:
    """Write ``folder/<label>.nc`` atomically and ``<label>.png`` (when matplotlib is there).

    Returns:
        The netCDF path.
    """
    folder.mkdir(exist_ok=True)
    path = folder / f"{label}.nc"
    write_netcdf(ds, path)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.info("matplotlib not installed: no plot for %s", label)
        return path
    k = min(n_tasks, ds.sizes["task"])
    fig, axes = plt.subplots(1, k + 1, figsize=(4 * (k + 1), 3.2), squeeze=False)
    for i in range(k):
        plot_bands(ds, task=i, ax=axes[0, i])
        axes[0, i].set_title(f"task {int(ds['task'].values[i])}", fontsize=9)
    axes[0, 0].legend(fontsize=7)
    plot_calibration(ds, ax=axes[0, k])
    axes[0, k].set_title(f"{ds.attrs.get('family', '')} / {label}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, folder / f"{label}.png", dpi=110)
    plt.close(fig)
    return path


__all__ = ["CURVE_LEVELS", "build_dataset", "plot_bands", "plot_calibration",
           "write_posterior"]
