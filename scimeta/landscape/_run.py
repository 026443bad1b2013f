"""Landscape of a trained run: ``RUN_DIR/landscape/<regime>.nc`` and its plot.

The meta-objective is the run's (``meta.algorithm`` unless ``learner`` is given),
evaluated at one of its inits on the first ``max_tasks`` ok tasks of a store of
the run's family; see :func:`landscape`.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import ConfigError
from ..meta import MAML, learner_names
from ..runtime.atomic import write_netcdf
from ..runtime.names import safe_name
from ..typing import Params

if TYPE_CHECKING:
    from ..batch import TaskBatch
    from ..data import TaskReader
    from ..family import ProblemFamily
    from ..train.config import TrainConfig
    from ..train.run_dir import RunDir

log = logging.getLogger(__name__)

DTYPES = ("float32", "float64")


@dataclass
class RunContext:
    """A run's directory, info, config and the learner of its objective."""

    rd: RunDir
    info: dict
    cfg: TrainConfig
    family: ProblemFamily
    learner: MAML
    learner_name: str
    device: torch.device
    dtype: torch.dtype

    def open_store(self, store: str | os.PathLike,
                   max_tasks: int | None) -> tuple[TaskReader, TaskBatch, str]:
        """(reader, batch of the first ``max_tasks`` ok tasks, label) of a store of the
        run's family (label: the store's regime, checked as a file name)."""
        from ..train.setup import open_reader

        reader = open_reader(str(store), self.cfg)
        if reader.meta.family != self.info["family"]:
            raise ConfigError(f"{store}: family {reader.meta.family!r}, but the run was trained "
                              f"on {self.info['family']!r}; give a store of that family")
        n = len(reader) if max_tasks is None else max_tasks
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"max_tasks={max_tasks!r} is not allowed; it must be an int >= 1")
        n = min(n, len(reader))
        batch = reader.batch(range(n)).to(device=self.device, dtype=self.dtype)
        label = safe_name(reader.meta.regime, f"regime attribute of {str(store)!r}")
        return reader, batch, label

    def params_of(self, raw: dict) -> Params:
        """A parameter dict for the learner: the model entries of ``raw`` (and its
        learned rates), missing rates from ``learner.init_params()``, cast."""
        base = self.learner.init_params()
        out = {k: v.detach() for k, v in base.items()}
        for k, v in raw.items():
            if k in out:
                out[k] = v.detach()
        return {k: v.to(device=self.device, dtype=self.dtype) for k, v in out.items()}

    def init_params(self, init: str) -> Params:
        """Parameters of trained init ``init`` (``"random"``: the untrained network)."""
        from ..train.conditioned import refuse_conditioned
        from ..train.setup import load_init

        safe_name(init, "init")
        refuse_conditioned(init)
        raw = {} if init == "random" else load_init(self.rd, init)
        return self.params_of(raw)


def load_run(run_dir: str | os.PathLike, learner: str | None = None,
             dtype: str | None = None) -> RunContext:
    """The run's context with the learner named ``learner`` (default: the run's
    ``meta.algorithm``), model and data in ``dtype`` (default: the run's)."""
    from .. import registry
    from ..train.conditioned import refuse_conditioned
    from ..train.models import build_learner, build_model
    from ..train.run_dir import RunDir
    from ..train.setup import resolve_device

    rd = RunDir(run_dir)
    info, cfg = rd.load_info(), rd.load_config()
    name = learner or cfg.meta.algorithm
    refuse_conditioned(name, "learner")
    if name not in learner_names():
        raise ConfigError(f"learner={name!r} is not allowed; known learners: "
                          f"{', '.join(learner_names())}")
    dt = dtype or cfg.run.dtype
    if dt not in DTYPES:
        raise ConfigError(f"dtype={dt!r} is not allowed; use one of {', '.join(DTYPES)}")
    device, torch_dtype = resolve_device(cfg.run.device), getattr(torch, dt)
    family = registry.get(info["family"])
    model = build_model(cfg, info["in_dim"], info["out_dim"], info["norm"], cfg.run.seed,
                        periods=info.get("periods"))
    model = model.to(device=device, dtype=torch_dtype)
    built = build_learner(cfg, model, family, name, norm=info["norm"])
    return RunContext(rd, info, cfg, family, built, name, device, torch_dtype)


def landscape(run_dir: str | os.PathLike, store: str | os.PathLike, *, init: str | None = None,
              learner: str | None = None, k: int = 10, max_tasks: int | None = None,
              probes: int = 20, slq_probes: int = 5, slq_steps: int = 30, slices: int = 3,
              slice_points: int = 21, slice_scale: float = 0.05,
              inner_steps: int = 30, dtype: str = "float64",
              tol: float = 1e-8, seed: int = 0, warn_share: float = 0.0, write: bool = True):
    """The meta-landscape of a trained init on the tasks of ``store`` (an xarray Dataset).

    J(θ) is the mean post-adaptation query loss of ``learner``'s objective (default:
    the run's ``meta.algorithm``) over the first ``max_tasks`` ok tasks of ``store``
    (default: ``meta.meta_batch`` of them), at init ``init`` (default: the run's
    ``meta.algorithm``; ``"random"``: the untrained network), in ``dtype``. Computed:
    the ``k`` top and bottom eigenpairs (Lanczos, relative tolerance ``tol``) with
    residual norms and per-layer shares; the trace (Hutchinson, ``probes`` probes)
    ± its standard error; the SLQ density (``slq_probes`` × ``slq_steps``); the loss
    along the first ``slices`` top and bottom eigenvectors (``slice_points`` steps in
    ± ``slice_scale`` · ‖θ‖); and per task λ_max of the support-loss Hessian with the stable
    rate 2/λ_max (``inner_steps`` Lanczos steps; a warning when ``meta.inner_lr``
    exceeds it for more than ``warn_share`` of the tasks). With ``write`` the Dataset
    goes to ``RUN_DIR/landscape/<regime>.nc`` with a plot ``<regime>.png``.
    """
    import xarray as xr

    from ._ops import MetaHessian, check_learner
    from ._sensitivity import default_radii, layer_shares, loss_slices
    from ._spectrum import check_k, eigenpairs, hutchinson, slq

    start = time.perf_counter()
    ctx = load_run(run_dir, learner, dtype)
    check_learner(ctx.learner)
    init = init or ctx.cfg.meta.algorithm
    params = ctx.init_params(init)
    n_params = sum(params[n].numel() for n in ctx.learner.names)
    check_k(k, n_params)
    reader, batch, label = ctx.open_store(store, ctx.cfg.meta.meta_batch
                                          if max_tasks is None else max_tasks)
    tasks = reader.tasks[:batch.num_tasks].astype(np.int64)
    hess = MetaHessian(ctx.learner, params, batch, task_ids=[int(t) for t in tasks])
    ends = {w: eigenpairs(hess, k, w, tol=tol, seed=seed) for w in ("top", "bottom")}
    trace = hutchinson(hess, probes, seed=seed)
    dens = slq(hess, slq_probes, slq_steps, seed=seed)
    grid = dens.grid()
    layers, _ = layer_shares(hess, ends["top"].vectors)
    n_slice = min(slices, k)
    radii = default_radii(hess, slice_points, slice_scale)
    rates = _stable(ctx, params, batch, label, inner_steps, seed, warn_share, tasks)
    shares = np.stack([layer_shares(hess, ends[w].vectors)[1] for w in ("top", "bottom")])
    slice_loss = np.stack([loss_slices(hess, ends[w].vectors[:, :n_slice], radii)
                           for w in ("top", "bottom")])
    seconds = time.perf_counter() - start
    ds = xr.Dataset(
        {
            "eigenvalue": (("end", "eig"), np.stack([ends[w].values for w in ends]),
                           {"long_name": "meta-Hessian eigenvalue (Lanczos)"}),
            "residual": (("end", "eig"), np.stack([ends[w].residuals for w in ends]),
                         {"long_name": "residual norm ||H u - lambda u|| (unit u)"}),
            "eigenvector": (("end", "eig", "param"),
                            np.stack([ends[w].vectors.T for w in ends]),
                            {"long_name": "unit eigenvector over the flat parameters"}),
            "layer_share": (("end", "eig", "layer"), shares,
                            {"long_name": "share of the eigenvector's squared norm"}),
            "trace": ((), trace.value, {"long_name": "trace (Hutchinson, Rademacher)"}),
            "trace_stderr": ((), trace.stderr, {"long_name": "standard error of trace"}),
            "slq_nodes": (("probe", "node"), dens.nodes),
            "slq_weights": (("probe", "node"), dens.weights),
            "density": (("grid",), dens.density(grid),
                        {"long_name": "spectral density (SLQ, Gaussian kernels)",
                         "sigma": dens.default_sigma()}),
            "slice_loss": (("end", "direction", "radius"), slice_loss,
                           {"long_name": "query loss after adaptation at theta + t u"}),
            "inner_lambda_max": (("task",), rates.lambda_max,
                                 {"long_name": "top eigenvalue of the task's support-loss "
                                               "Hessian over the adapted parameters"}),
            "stable_rate": (("task",), rates.rate,
                            {"long_name": "largest stable inner rate 2/lambda_max"}),
        },
        coords={"end": ["top", "bottom"], "eig": np.arange(k), "layer": layers,
                "param": np.arange(hess.dim), "probe": np.arange(slq_probes),
                "node": np.arange(dens.nodes.shape[1]), "grid": grid,
                "direction": np.arange(n_slice), "radius": radii, "task": tasks},
        attrs={"run_dir": str(ctx.rd.path), "store": str(reader.path), "regime": label,
               "family": ctx.info["family"], "init": init, "learner": ctx.learner_name,
               "inner_lr": float(ctx.learner.inner_lr), "inner_steps": ctx.learner.inner_steps,
               "physics_weight": ctx.cfg.meta.physics_weight, "dtype": str(dtype),
               "meta_loss": hess.loss, "meta_grad_norm": float(hess.gradient.norm()),
               "n_params": hess.dim, "n_tasks": batch.num_tasks, "hvp_path": hess.path,
               "hvp_products": hess.products, "trace_probes": probes,
               "share_unstable": rates.share_unstable,
               "param_tensors": json.dumps({n: [hess.flat.slice(n).start, hess.flat.slice(n).stop]
                                            for n in hess.flat.names}),
               "seconds": seconds},
    )
    log.info("landscape of %s on %s: top eigenvalue %.4g, trace %.4g ± %.2g, %d products, "
             "%.1f s", init, label, ends["top"].values[0], trace.value, trace.stderr,
             hess.products, seconds)
    if write:
        write_landscape(ctx.rd.path, ds, label)
    return ds


def _stable(ctx: RunContext, params: Params, batch, label: str, steps: int, seed: int,
            warn_share: float, tasks: np.ndarray):
    from ._inner import stable_inner_rates

    return stable_inner_rates(ctx.learner, params, batch, steps=steps, seed=seed,
                              warn_share=warn_share, label=f"regime {label}",
                              task_ids=[int(t) for t in tasks])


def write_dataset(ds, path: Path) -> Path:
    """Write a Dataset atomically (h5netcdf)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_netcdf(ds, path)


def write_landscape(run_dir: str | os.PathLike, ds, label: str) -> Path:
    """``RUN_DIR/landscape/<label>.nc`` and ``<label>.png`` (the plot when matplotlib
    is installed)."""
    label = safe_name(label, "label")
    out = Path(run_dir) / "landscape"
    path = write_dataset(ds, out / f"{label}.nc")
    from ._plots import plot_landscape, render

    render(plot_landscape, ds, out / f"{label}.png", 20)
    return path


__all__ = ["DTYPES", "RunContext", "landscape", "load_run", "safe_name", "write_dataset",
           "write_landscape"]
