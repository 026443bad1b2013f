"""LEADS's training rollouts: restart from the true state at random times, less and less.

LEADS (Yin et al. 2021; ``forecasters.py`` and ``experiments.py`` of its code) trains
its forecasters on rollouts that restart from the *observed* state at each interior
time with probability ``eps`` and otherwise continue from the prediction; ``eps``
starts at ``k`` and is multiplied by ``k`` every ``every`` updates (k = 0.99, every
10 updates: ``eps`` = 0.37 after 1000 updates, 6.6e-3 after 5000), so training moves
from one-step-ahead fits to full rollouts. Evaluation is always a full rollout. Every
output time is still a prediction: a restart at time i replaces the state the next
interval starts from, not the prediction reported at i.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch.func import functional_call, vmap

from ..errors import ConfigError
from ..nn import Forecaster

#: LEADS's schedule: eps = 0.99 at the start, times 0.99 every 10 updates
LEADS_SCHEDULE = (0.99, 10)


def check_schedule(teacher_forcing: object) -> tuple[float, int] | None:
    """``None`` or a pair ``(k, every)`` with 0 <= k <= 1 and an int every >= 1."""
    if teacher_forcing is None:
        return None
    pair = tuple(teacher_forcing) if isinstance(teacher_forcing, tuple | list) else ()
    k, every = pair if len(pair) == 2 else (None, None)
    if not (isinstance(k, int | float) and not isinstance(k, bool) and 0 <= k <= 1
            and isinstance(every, int) and not isinstance(every, bool) and every >= 1):
        raise ConfigError(f"teacher_forcing={teacher_forcing!r} is not allowed; give None or "
                          "(k, every) with 0 <= k <= 1 and an int every >= 1, e.g. "
                          f"{LEADS_SCHEDULE} (LEADS's)")
    return float(k), every


def restart_rate(schedule: tuple[float, int], step: int) -> float:
    """``eps`` at update ``step`` (0-based): ``k ** (1 + step // every)``."""
    k, every = schedule
    return k ** (1 + step // every)


def draw_restarts(eps: float, n_env: int, n_times: int,
                  gen: torch.Generator) -> torch.Tensor:
    """Restart flags ``[E, T-1]`` (bool): entry i says whether interval i starts from
    the observed state; i = 0 always does (y0), the others with probability eps, one
    draw per environment and interval (shared by its trajectories, as in LEADS)."""
    flags = torch.rand(n_env, n_times - 1, generator=gen) < eps
    flags[:, 0] = True
    return flags


def forced_rollout(model: Forecaster, params: Mapping[str, torch.Tensor],
                   stacked: Mapping[str, bool], target: torch.Tensor,
                   restarts: torch.Tensor) -> torch.Tensor:
    """Rollouts ``[E, N, T, S]`` of ``model`` whose interval i starts from the observed
    ``target[:, :, i]`` where ``restarts[:, i]`` and from the prediction elsewhere.

    Args:
        model: the forecaster; its own rollout runs, with a restart hook.
        params: the forecaster's parameter dict (``field.*``), each entry shared or
            stacked over the E environments (``stacked``).
        target: observed trajectories ``[E, N, T, S]`` (index 0: the initial state).
        restarts: ``[E, T-1]`` bool, from :func:`draw_restarts`.
    """
    def one(p: dict[str, torch.Tensor], obs: torch.Tensor,
            flags: torch.Tensor) -> torch.Tensor:
        def restart(i: int, y: torch.Tensor) -> torch.Tensor:
            return torch.where(flags[i], obs[:, i], y)

        out = functional_call(model, p, (obs[:, 0],), {"restart": restart})
        return out.reshape(obs.shape)

    dims = {k: 0 if stacked[k] else None for k in params}
    return vmap(one, in_dims=(dims, 0, 0))(dict(params), target, restarts)
