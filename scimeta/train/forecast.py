"""Full-rollout evaluation and per-environment fine-tuning of a forecaster.

The LEADS/CoDA forecasting protocol (docs/protocols.md) scores a model of the
dynamics by rolling it out from a trajectory's initial state over the whole time grid,
with no teacher forcing (only ``y0`` is given), and comparing every time and state with
the stored trajectory. A model is adapted to an environment by fitting that same loss
on the environment's support trajectories. Both work on a
:class:`~scimeta.nn.Forecaster` called with a parameter dict (``torch.func``), one
dict shared by all environments or one stacked dict (leading axis E) per environment::

    mse = forecast_mse(model, None, y0, traj)                 # [E, N], no adaptation
    phi, curve = fine_tune(model, params, sup_y0, sup_traj, steps=300, lr=1e-2)
    mse = forecast_mse(model, phi, y0, traj)                  # [E, N], adapted
    err = forecast_error(model, phi, y0, traj)                # [E, N, T], per time

:func:`fine_tune_validated` keeps the iterate with the least MSE on held-out
trajectories (stopping by validation) when a model can overfit its few training ones.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import torch
from torch.func import functional_call, vmap

from ..errors import ConfigError
from ..nn import Forecaster
from ._forecast_args import Params, check_data, check_model, names_of, own_params, stacked_of
from ._teacher_forcing import check_schedule, draw_restarts, forced_rollout, restart_rate

log = logging.getLogger(__name__)

#: optimizers :func:`fine_tune` accepts
OPTIMIZERS = ("adam", "sgd")
#: learning-rate schedules :func:`fine_tune` accepts: ``"constant"``, or ``"cosine"``
#: (rate ``lr (1 + cos(pi k / steps)) / 2`` at update k, from lr down to 0)
SCHEDULES = ("constant", "cosine")

#: ``penalty(phi, y0, target) -> [E]``: a per-environment term added to the training
#: loss (see :func:`fine_tune`)
Penalty = Callable[[Params, torch.Tensor, torch.Tensor], torch.Tensor]


def _rollout(model: Forecaster, params: Params, stacked: Mapping[str, bool],
             y0: torch.Tensor) -> torch.Tensor:
    """[E, N, S] initial states -> [E, N, T, S] rollouts (stacked entries per env)."""
    def one(p: Params, y: torch.Tensor) -> torch.Tensor:
        return functional_call(model, p, (y,))

    dims = {k: 0 if stacked[k] else None for k in params}
    out = vmap(one, in_dims=(dims, 0))(params, y0)
    return out.reshape(*y0.shape[:2], model.t.shape[0], y0.shape[-1])


def forecast_error(model: Forecaster, params: Mapping[str, torch.Tensor] | None,
                   y0: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error of full rollouts at each time, ``[E, N, T]`` (no graph).

    The same rollouts as :func:`forecast_mse` (whose value is this array's mean over
    its last axis), kept per time so that the growth of the error along the forecast
    horizon can be read (:func:`scimeta.plot.forecast.plot_forecast_error`).

    Args: as :func:`forecast_mse`.

    Returns:
        the mean over the S states of the squared error of the rollout from ``y0``
        at each of the T times of the model's grid (state units squared), per
        environment and trajectory; index 0 is the initial state (error 0 where
        ``y0`` is the trajectory's first state).
    """
    model = check_model(model)
    y0, target = check_data(model, y0, target)
    p = own_params(model, params)
    with torch.no_grad():
        pred = _rollout(model, p, stacked_of(model, p, y0.shape[0]), y0)
    return (pred - target).pow(2).mean(dim=-1)


def forecast_mse(model: Forecaster, params: Mapping[str, torch.Tensor] | None,
                 y0: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-trajectory MSE of full rollouts, ``[E, N]`` (no graph).

    Args:
        model: the forecaster (its grid ``t`` ``[T]`` must be the data's).
        params: the model's parameter dict, shared by every environment, or stacked
            with a leading axis E (one set per environment, as :func:`fine_tune`
            returns); ``None``: the model's own parameters.
        y0: initial states ``[E, N, S]`` (E environments, N trajectories, S states).
        target: the trajectories ``[E, N, T, S]`` or flattened ``[E, N, T*S]``
            (time-major, :class:`~scimeta.data.EnvironmentReader`'s layout); index 0
            in time is the initial state.

    Returns:
        the mean over the T times and S states of the squared error of the rollout
        from ``y0`` (state units squared), per environment and trajectory.
    """
    return forecast_error(model, params, y0, target).mean(dim=-1)


def fine_tune(model: Forecaster, params: Mapping[str, torch.Tensor] | None,
              y0: torch.Tensor, target: torch.Tensor, steps: int, lr: float,
              optimizer: str = "adam", names: Sequence[str] | None = None,
              shared: Sequence[str] = (), batch: int | None = None,
              seed: int = 0, schedule: str = "constant",
              teacher_forcing: tuple[float, int] | None = None,
              penalty: Penalty | None = None) -> tuple[Params, torch.Tensor]:
    """Adapt ``params`` to each of E environments on its support trajectories.

    Every environment starts from ``params`` (each entry shared, or stacked
    ``[E, ...]``) and takes ``steps`` full-batch updates of its own mean rollout MSE
    over its K trajectories. The entries in ``names`` get one copy per environment;
    those in ``shared`` one copy for all, fitted to the sum of the environments'
    losses (joint training, e.g. a network shared by per-environment contexts); the
    rest stay fixed. The E problems are solved at once on stacked parameters: Adam
    and SGD act elementwise and the summed loss separates, so with ``shared`` empty
    this equals E independent runs.

    Args:
        model: the forecaster.
        params: starting parameter dict (``None``: the model's own).
        y0: support initial states ``[E, K, S]``.
        target: support trajectories ``[E, K, T, S]`` or ``[E, K, T*S]``.
        steps: number of updates (>= 0).
        lr: learning rate (> 0).
        optimizer: one of :data:`OPTIMIZERS`.
        names: parameters adapted per environment (default: every one not in
            ``shared``).
        shared: parameters trained jointly over the environments (default: none).
        batch: trajectories per environment in each update, drawn without
            replacement for each environment and step (a torch generator seeded with
            ``seed``); None (default) uses all K (full batch). LEADS trains on 2 per
            environment per step.
        seed: seed of the mini-batch draws.
        schedule: one of :data:`SCHEDULES`; ``"cosine"`` decays the rate of update
            k (0-based) to ``lr (1 + cos(pi k / steps)) / 2``.
        teacher_forcing: None (default: every update fits full rollouts from y0), or
            LEADS's rule ``(k, every)``, e.g. ``(0.99, 10)``: update s fits rollouts
            that restart from the observed state at each interior time with
            probability ``k ** (1 + s // every)`` (one draw per environment and time,
            from a generator seeded with ``seed + 1``); see
            :mod:`scimeta.train._teacher_forcing`. The curve then holds those
            training losses; its last entry, and validation, are full rollouts.
        penalty: None (default), or ``penalty(phi, y0_b, target_b) -> [E]``, a
            differentiable term per environment added to each update's loss (the
            sum over environments of MSE + penalty is minimised): ``phi`` the
            current parameters (``names`` stacked ``[E, ...]``), ``y0_b``
            ``[E, b, S]`` and ``target_b`` ``[E, b, T, S]`` that update's
            mini-batch. E.g. LEADS's penalty on the per-environment part of a
            decomposed field. The curve holds the MSE alone.

    Returns:
        ``(phi, curve)``: every parameter, detached (``names`` stacked
        ``[E, *shape]``, the others as given or trained); the support MSE per
        environment before each update (on that update's mini-batch) and after the
        last (on all K), ``[steps + 1, E]``.
    """
    fit = _fit(model, params, y0, target, steps, lr, optimizer, names, shared, batch, seed,
               schedule, teacher_forcing, penalty)
    return fit.phi, fit.curve


class ValidatedFit(NamedTuple):
    """What :func:`fine_tune_validated` returns.

    ``phi``: the kept parameters (detached, as :func:`fine_tune`'s); ``curve``: the
    training MSE per environment as :func:`fine_tune`'s ``[steps + 1, E]``;
    ``val_steps``: the update counts at which the validation MSE was measured
    ``[C]``; ``val_curve``: that MSE per environment ``[C, E]``; ``best_step``: the
    update count of the kept parameters (the least mean validation MSE over the
    environments; the earliest on ties).
    """

    phi: Params
    curve: torch.Tensor
    val_steps: torch.Tensor
    val_curve: torch.Tensor
    best_step: int


def fine_tune_validated(model: Forecaster, params: Mapping[str, torch.Tensor] | None,
                        y0: torch.Tensor, target: torch.Tensor, val_y0: torch.Tensor,
                        val_target: torch.Tensor, steps: int, lr: float, every: int = 50,
                        **kwargs) -> ValidatedFit:
    """:func:`fine_tune` that keeps the iterate with the least validation MSE.

    The full-rollout MSE on the validation trajectories (val_y0 ``[E, V, S]``,
    val_target ``[E, V, T, S]`` or flat; trajectories held out from ``target``) is
    measured before the first update, every ``every`` updates and after the last; the
    parameters at the least mean over the E environments are returned (stopping by
    validation: a model that overfits its few training trajectories is kept at its
    best, with nothing chosen on a test set). ``kwargs`` are :func:`fine_tune`'s
    (optimizer, names, shared, batch, seed, schedule, teacher_forcing, penalty).
    """
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ConfigError(f"every={every!r} is not allowed; it must be an int >= 1")
    model = check_model(model)
    val_y0, val_target = check_data(model, val_y0, val_target)
    if val_y0.shape[0] != torch.as_tensor(y0).shape[0]:
        raise ConfigError(f"val_y0 has {val_y0.shape[0]} environments; y0 has "
                          f"{torch.as_tensor(y0).shape[0]}")
    return _fit(model, params, y0, target, steps, lr, val=(val_y0, val_target, every),
                **kwargs)


def _fit(model, params, y0, target, steps, lr, optimizer="adam", names=None, shared=(),
         batch=None, seed=0, schedule="constant", teacher_forcing=None, penalty=None,
         val=None) -> ValidatedFit:
    """The update loop of :func:`fine_tune` (``val``: validation data and interval)."""
    model = check_model(model)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ConfigError(f"steps={steps!r} is not allowed; it must be an int >= 0")
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not lr > 0:
        raise ConfigError(f"lr={lr!r} is not allowed; it must be a number > 0")
    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"optimizer={optimizer!r} is not allowed; allowed: "
                          f"{', '.join(OPTIMIZERS)}")
    if schedule not in SCHEDULES:
        raise ConfigError(f"schedule={schedule!r} is not allowed; allowed: "
                          f"{', '.join(SCHEDULES)}")
    forcing = check_schedule(teacher_forcing)
    if penalty is not None and not callable(penalty):
        raise ConfigError(f"penalty={penalty!r} is not allowed; give None or a callable "
                          "penalty(phi, y0, target) -> [E]")
    y0, target = check_data(model, y0, target)
    n_env, n_traj = y0.shape[:2]
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int)
                              or not 1 <= batch <= n_traj):
        raise ConfigError(f"batch={batch!r} is not allowed; it must be None or an int in "
                          f"[1, {n_traj}] (the support trajectories per environment)")
    start = own_params(model, params)
    stacked = stacked_of(model, start, n_env)
    joint = names_of(model, "shared", shared, ())
    own = names_of(model, "names", names, [k for k in start if k not in joint])
    both = sorted(set(own) & set(joint))
    if both:
        raise ConfigError(f"names and shared both hold {both}; a parameter is adapted per "
                          "environment or shared, not both")
    if any(stacked[k] for k in joint):
        raise ConfigError(f"shared={joint!r}: shared parameters must not be stacked per "
                          "environment")
    if steps and not (own or joint):
        raise ConfigError("names=[] and shared=(): nothing to train; name the parameters "
                          "to adapt (names) or to share (shared), or pass steps=0")
    phi = {k: v.detach() for k, v in start.items()}
    for k in own:
        v = phi[k] if stacked[k] else phi[k].unsqueeze(0).expand(n_env, *phi[k].shape)
        phi[k], stacked[k] = v.clone(), True
    train = [phi[k].clone().requires_grad_(True) for k in (*own, *joint)]
    phi.update(zip((*own, *joint), train, strict=True))
    opt = (torch.optim.Adam(train, lr=lr) if optimizer == "adam"
           else torch.optim.SGD(train, lr=lr))
    decay = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
             if schedule == "cosine" and steps else None)
    curve: list[torch.Tensor] = []
    checks: list[tuple[int, torch.Tensor]] = []
    best: tuple[float, int, Params] | None = None
    gen = torch.Generator().manual_seed(int(seed))
    gen_forcing = torch.Generator().manual_seed(int(seed) + 1)
    rows = torch.arange(n_env)[:, None]
    for step in range(steps + 1):
        if val is not None and (step % val[2] == 0 or step == steps):
            with torch.no_grad():
                v = (_rollout(model, phi, stacked, val[0]) - val[1]).pow(2).mean(
                    dim=(1, 2, 3))
            checks.append((step, v))
            score = float(v.mean()) if bool(torch.isfinite(v).all()) else math.inf
            if best is None or score < best[0]:  # a diverged check never wins
                best = (score, step, {k: t.detach().clone() for k, t in phi.items()})
            log.info("fit: update %d/%d, validation MSE %.4g (least %.4g at update %d)",
                     step, steps, score, best[0], best[1])
        y0_b, target_b = y0, target
        if batch is not None and batch < n_traj and step < steps:
            pick = torch.stack([torch.randperm(n_traj, generator=gen)[:batch]
                                for _ in range(n_env)])               # [E, batch]
            y0_b, target_b = y0[rows, pick], target[rows, pick]
        if forcing is not None and step < steps:
            restarts = draw_restarts(restart_rate(forcing, step), n_env, target.shape[2],
                                     gen_forcing)
            pred = forced_rollout(model, phi, stacked, target_b, restarts)
        else:
            pred = _rollout(model, phi, stacked, y0_b)
        err = (pred - target_b).pow(2).mean(dim=(1, 2, 3))
        curve.append(err.detach())                                     # [E]
        if val is None and steps >= 1000 and step % (steps // 10) == 0:
            log.info("fit: update %d/%d, training MSE %.4g", step, steps,
                     float(curve[-1].mean()))
        if len(curve) > steps:
            break
        opt.zero_grad()
        loss = err.sum()
        if penalty is not None:
            extra = penalty(phi, y0_b, target_b)
            if extra.shape != (n_env,):
                raise ConfigError(f"penalty returned shape {tuple(extra.shape)}; it must "
                                  f"return one value per environment, [{n_env}]")
            loss = loss + extra.sum()
        loss.backward()
        opt.step()
        if decay is not None:
            decay.step()
    kept = {k: v.detach() for k, v in phi.items()} if best is None else best[2]
    return ValidatedFit(kept, torch.stack(curve),
                        torch.tensor([c[0] for c in checks], dtype=torch.long),
                        torch.stack([c[1] for c in checks]) if checks else torch.zeros(0, n_env),
                        steps if best is None else best[1])
