"""Laplace posteriors for every held-out task of a store, from a trained run.

For each task: adapt the run's init θ on the support set (the run's inner loop and
rate, ``meta.inner_steps`` steps or ``steps``), fit a Laplace posterior around the
adapted φ with θ as the prior mean, predict on the query points and score the
predictive against the truth (:mod:`.metrics`). Hyperparameters (empirical Bayes on
support data only): one noise scale per output channel shared by the tasks and one
prior precision per task, maximising the summed Laplace evidence
``Σ_t log Z_t(σ, τ_t)`` (MacKay's fixed point, :mod:`._hyper`). With a ``validation``
store, σ and one prior precision (the geometric mean of the per-task ones) are fitted
on its tasks and held fixed on ``store``.

The baseline the posterior is judged against is the same point prediction f(x; φ)
with a Gaussian band of one fitted noise level per channel (maximum likelihood over
the pooled support residuals): ``base_*`` variables. ``oracle_*``: the same, with the
noise fitted on the query residuals themselves (the best any constant band does).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import replace

import numpy as np
import torch
import xarray as xr

from .. import registry
from ..errors import ConfigError, RunError
from ..runtime.names import safe_name
from . import metrics
from ._curvature import check_structure
from ._fit import fit_laplace
from ._hyper import fit_hyper
from ._run_io import build_dataset, write_posterior

log = logging.getLogger(__name__)


def _check_int(name: str, value: object, low: int) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or value < low):
        raise ConfigError(f"{name}={value!r} is not allowed; it must be an int >= {low}")


def _load(run_dir, init: str):
    from ..meta import RATE_PREFIX
    from ..train.conditioned import WIDE_INITS, refuse_conditioned
    from ..train.evaluate import available_inits
    from ..train.models import build_learner, build_model
    from ..train.run_dir import RunDir
    from ..train.setup import load_init

    rd = RunDir(run_dir)
    info, cfg = rd.load_info(), rd.load_config()
    safe_name(init, "init")
    trained = [n for n in available_inits(rd) if n not in ("random", *WIDE_INITS)]
    refuse_conditioned(init, "init", trained)
    if init not in trained:
        raise RunError(f"init={init!r}: run {str(rd.path)!r} has no trained init {init!r}; "
                       f"trained inits: {', '.join(trained) or 'none (finish training)'}")
    family = registry.get(info["family"])
    model = build_model(cfg, info["in_dim"], info["out_dim"], info["norm"], cfg.run.seed,
                        periods=info.get("periods"))
    model = model.to(dtype=torch.float64).eval()
    learner = build_learner(cfg, model, family, "maml", norm=info["norm"])
    raw = load_init(rd, init)
    theta = {k: v.detach().to(torch.float64) for k, v in raw.items()
             if k in learner.names and not k.startswith(RATE_PREFIX)}
    return rd, info, cfg, learner, theta


def _tasks(path, cfg, info, max_tasks: int | None):
    from ..data import TaskReader

    reader = TaskReader(str(path), in_memory=cfg.data.in_memory,
                        n_collocation=cfg.data.n_collocation)
    if reader.meta.family != info["family"]:
        raise ConfigError(f"{path}: family {reader.meta.family!r}, but the run was trained on "
                          f"{info['family']!r}")
    n = len(reader) if max_tasks is None else min(max_tasks, len(reader))
    if n < 1:
        raise ConfigError(f"{path}: no ok task to evaluate")
    return reader, n, reader.batch(range(n)).to(dtype=torch.float64)


def _adapt(learner, theta, batch, steps) -> dict:
    """Adapted parameters of every task, each ``[B, *shape]`` (detached)."""
    return {k: v.detach() for k, v in learner.adapt_batch(theta, batch, steps=steps).items()}


def physics_lambda(learner, batch, noise0: torch.Tensor, structure: str) -> float | None:
    """Precision λ of the residual block (:func:`fit_laplace` ``physics_precision``) for a
    learner whose inner loss has a physics term, or None (no term, no collocation points,
    or ``kron``, which cannot carry it). The training weight w maps to
    λ = N·C·w / (σ₀² M C_r), σ₀² the mean of the starting noise variance over channels;
    λ is then held fixed while σ and τ are fitted."""
    phys = learner.physics
    if phys is None or not phys.applies("inner") or batch.collocation_x is None \
            or structure == "kron":
        return None
    n, c = batch.support_y.shape[1:]
    m = batch.collocation_x.shape[1]
    return float(n * c * phys.weight / (noise0.square().mean() * m * phys.state_dim))


def _fit_tasks(learner, theta, phi, batch, structure, noise0, tau, chunk_size):
    """The posterior of every task around its φ (hyperparameters not yet fitted); with
    the residual block of :func:`physics_lambda` when the run adapts with one."""
    posts, t0 = [], time.perf_counter()
    lam = physics_lambda(learner, batch, torch.as_tensor(noise0), structure)
    for t in range(batch.support_x.shape[0]):
        extra = {} if lam is None else {
            "collocation_x": batch.collocation_x[t], "task_params": batch.params[t],
            "physics_precision": lam}
        posts.append(fit_laplace(learner, {k: v[t] for k, v in phi.items()},
                                 batch.support_x[t], batch.support_y[t], prior_mean=theta,
                                 structure=structure, prior_precision=tau,
                                 noise_std=noise0, chunk_size=chunk_size, **extra))
        if (t + 1) % 25 == 0:
            log.info("posterior: %d tasks fitted (%.2f s per task)", t + 1,
                     (time.perf_counter() - t0) / (t + 1))
    return posts


def _noise0(learner, phi, batch) -> torch.Tensor:
    """A start for σ ``[C]``: the support residual's RMS, floored at 1e-3 of y's spread."""
    with torch.no_grad():
        res = learner.predict(phi, batch.support_x) - batch.support_y
    rms = res.square().mean((0, 1)).sqrt()
    spread = batch.support_y.reshape(-1, res.shape[-1]).std(0)
    return torch.maximum(rms, 1e-3 * spread.clamp_min(1e-12))


def posterior(run_dir: str | os.PathLike, store: str | os.PathLike, *, init: str = "maml",
              structure: str = "kron", steps: int | None = None, max_tasks: int | None = None,
              validation: str | os.PathLike | None = None, label: str | None = None,
              prior_precision: float = 1.0, chunk_size: int = 256,
              write: bool = True, batched: bool = True) -> xr.Dataset:
    """Laplace predictive of ``init`` adapted to each task of ``store``, with metrics.

    Args:
        run_dir: a run directory written by ``scimeta train``.
        store: a task store of the run's family (support ``[K]``, query ``[Q]`` points).
        init: the trained init used as prior mean θ (``maml``, ``fomaml``, ``joint``).
        structure: curvature, one of :data:`~scimeta.bayes.STRUCTURES`.
        steps: inner steps (default: the run's ``meta.inner_steps``), at ``meta.inner_lr``.
        max_tasks: the first ``max_tasks`` ok tasks only (default: all).
        validation: a store whose tasks fit σ and τ, then held fixed (default: none;
            fitted on ``store``'s support sets).
        label: the file name (default: the store's regime).
        prior_precision: the starting τ (1/(parameter units)²).
        chunk_size: points per Jacobian–vector chunk of the predictive.
        write: save ``RUN_DIR/posterior/<label>.nc`` and ``<label>.png``.
        batched: with ``structure="kron"``, fit every task at once
            (:func:`~scimeta.bayes.fit_kron_batch`; the same numbers as the per-task
            loop, tested to 1e-8); False: one task at a time.

    Returns:
        A Dataset: ``pred_mean``, ``pred_std`` (y) and ``pred_std_f`` (f only)
        ``(task, point, channel)`` in state units; ``query_y`` the truth; ``nll``
        (nats per value), ``crps`` (state units) ``(task)``; ``coverage(level, task)``;
        ``noise_std(channel)``; ``prior_precision(task)``; ``log_evidence(task)``; the
        same scores for the point estimate with a fitted noise (``base_*``,
        ``oracle_*``) and the pooled calibration curves.
    """
    structure = check_structure(structure)
    _check_int("steps", steps, 0)
    _check_int("max_tasks", max_tasks, 1)
    rd, info, cfg, learner, theta = _load(run_dir, init)
    reader, n, batch = _tasks(store, cfg, info, max_tasks)
    label = safe_name(label or reader.meta.regime,
                      "label" if label else f"regime attribute of {str(store)!r}")
    phys = learner.physics is not None and learner.physics.applies("inner")
    if phys and structure == "kron":
        log.warning("posterior: the run adapts with the equation residual, but kron cannot "
                    "carry its block: the likelihood has the support data only (use "
                    "structure diag, full or last-layer to include it)")
    t0 = time.perf_counter()
    vbatch = None if validation is None else _tasks(validation, cfg, info, max_tasks)[2]
    phi = _adapt(learner, theta, batch, steps)
    if batched and structure == "kron":
        mean, var_f, var_y, s2, tau_t, log_z = _kron_all(learner, theta, phi, batch, vbatch,
                                                        steps, prior_precision, chunk_size)
    else:
        mean, var_f, var_y, s2, tau_t, log_z = _per_task(
            learner, theta, phi, batch, vbatch, steps, structure, prior_precision, chunk_size)
    seconds = (time.perf_counter() - t0) / n
    with torch.no_grad():
        support_res = learner.predict(phi, batch.support_x) - batch.support_y
    base_var = support_res.square().mean((0, 1))
    oracle_var = (mean - batch.query_y).square().mean((0, 1))
    ds = build_dataset(
        batch=batch, reader=reader, n=n, mean=mean, var_f=var_f, var_y=var_y,
        base_var=base_var, oracle_var=oracle_var, noise_var=s2, tau=tau_t, log_z=log_z,
        attrs={"run_dir": str(rd.path), "store": str(reader.path), "label": label,
               "family": info["family"], "regime": reader.meta.regime, "init": init,
               "structure": structure, "inner_lr": cfg.meta.inner_lr,
               "steps": cfg.meta.inner_steps if steps is None else steps,
               "hyperparameters": ("fitted on the validation store " + str(validation))
               if validation is not None else "fitted on the support sets of this store",
               "seconds_per_task": seconds, "levels": list(metrics.LEVELS),
               "physics_in_likelihood": int(phys and structure != "kron")})
    cov90 = float(ds["coverage"].sel(level=0.9).mean())
    log.info("posterior %s: %d tasks, %.3f s per task; 90%% coverage %.3f, NLL %.3f "
             "(point estimate %.3f)", label, n, seconds, cov90, float(ds["nll"].mean()),
             float(ds["base_nll"].mean()))
    if write:
        write_posterior(rd.path / "posterior", ds, label)
    return ds


def _kron_all(learner, theta, phi, batch, vbatch, steps, tau0, chunk_size):
    """The K-FAC posteriors of every task at once around its adapted ``phi``: (mean,
    var_f, var_y ``[B, Q, C]``, σ² ``[C]``, τ ``[B]``, log Z ``[B]``); σ and τ fitted as
    in :func:`_per_task`."""
    from ._kron_batch import fit_kron_batch

    if vbatch is not None:
        vphi = _adapt(learner, theta, vbatch, steps)
        vkb = fit_kron_batch(learner, vphi, vbatch.support_x, vbatch.support_y,
                             prior_mean=theta, prior_precision=tau0,
                             noise_std=_noise0(learner, vphi, vbatch), chunk_size=chunk_size,
                             optimize=True)
        noise, tau = vkb.noise_var.sqrt(), float(torch.exp(vkb.tau.log().mean()))
    kb = fit_kron_batch(learner, phi, batch.support_x, batch.support_y, prior_mean=theta,
                        prior_precision=tau if vbatch is not None else tau0,
                        noise_std=noise if vbatch is not None else _noise0(learner, phi, batch),
                        chunk_size=chunk_size, optimize=vbatch is None)
    pred = kb.predict(batch.query_x, chunk_size=chunk_size)
    return (pred.mean, pred.var_f, pred.var_y, kb.noise_var, kb.tau.expand(batch.num_tasks),
            kb.log_marginal_likelihood())


def _per_task(learner, theta, phi, batch, vbatch, steps, structure, tau0, chunk_size):
    """One task at a time (any structure): the same outputs as :func:`_kron_all`."""
    prior_precision = tau0
    if vbatch is not None:
        vphi = _adapt(learner, theta, vbatch, steps)
        vposts = _fit_tasks(learner, theta, vphi, vbatch, structure,
                            _noise0(learner, vphi, vbatch), prior_precision, chunk_size)
        s2, vls = fit_hyper(vposts)
        tau = float(prior_precision * torch.exp(vls.mean()))
        posts = _fit_tasks(learner, theta, phi, batch, structure, s2.sqrt(), tau, chunk_size)
        ls = torch.zeros(batch.num_tasks, dtype=s2.dtype, device=s2.device)
    else:
        posts = _fit_tasks(learner, theta, phi, batch, structure,
                           _noise0(learner, phi, batch), prior_precision, chunk_size)
        s2, ls = fit_hyper(posts)
    posts = [replace(p, noise_var=s2, prior=p.prior.rescaled(ls[t:t + 1]))
             for t, p in enumerate(posts)]
    preds = [p.predict(batch.query_x[t], chunk_size=chunk_size) for t, p in enumerate(posts)]
    return (torch.stack([p.mean for p in preds]), torch.stack([p.var_f for p in preds]),
            torch.stack([p.var_y for p in preds]), s2,
            torch.stack([p.prior.value[0] for p in posts]),
            torch.stack([p.log_marginal_likelihood() for p in posts]))


def predictive_std(learner, phi, theta, x: torch.Tensor, y: torch.Tensor,
                   points: torch.Tensor, *, structure: str = "kron") -> np.ndarray:
    """Laplace predictive standard deviation of y for one adapted task (``scimeta adapt``).

    Args:
        learner: the run's learner; phi, theta: adapted parameters and the init (prior mean).
        x: support inputs ``[K, d_in]``; y: support values ``[K, C]`` (NaN: missing; rows
            with a missing channel are left out of the posterior).
        points: prediction points ``[M, d_in]``.
        structure: curvature (:data:`~scimeta.bayes.STRUCTURES`).

    Returns:
        ``[M, C]`` standard deviations (state units): parameter uncertainty plus the
        per-channel noise, both fitted by the Laplace evidence on the support rows.
    """
    full = ~torch.isnan(y).any(1)
    if not bool(full.any()):
        raise ConfigError("uncertainty=True needs at least one support row with every "
                          "channel observed")
    if not bool(full.all()):
        log.warning("uncertainty: %d support row(s) with a missing channel are left out of "
                    "the posterior", int((~full).sum()))
    x, y = x[full], y[full]
    with torch.no_grad():
        res = learner.predict(phi, x) - y
    rms = res.square().mean(0).sqrt()
    noise0 = torch.maximum(rms, 1e-3 * y.abs().amax(0).clamp_min(1e-6))
    post = fit_laplace(learner, phi, x, y, prior_mean=theta, structure=structure,
                       prior_precision=1.0, noise_std=noise0, optimize="both")
    return post.predict(points).std_y.cpu().numpy()


__all__ = ["posterior", "predictive_std"]
