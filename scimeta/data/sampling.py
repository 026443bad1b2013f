"""Support/query/collocation sampling rules on a task's space-time grid.

Indices are *flat* indices into the ``(time, *space)`` grid of one task
(``numpy.ravel_multi_index`` order). The rule and sizes are recorded in the file.

Rules
    ``random``   support and query drawn uniformly without replacement from all
                 grid points, disjoint.
    ``initial``  support drawn from the initial time slice only (an initial-condition
                 observation), query from the later times.
    ``forecast`` support is the first K time steps (at random spatial points for PDEs),
                 query from the later times: the extrapolation-in-time setting.
    ``sensors``  support is every time step at ``n_sensors = K // T`` fixed spatial
                 locations drawn without replacement (K must be a multiple of the
                 number of times T), like a few probes recording whole time series;
                 query drawn from the space-time points at all other locations.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError

RULES = ("random", "initial", "forecast", "sensors")


def sample_indices(
    rule: str, rng: np.random.Generator, grid_shape: tuple[int, ...], n_support: int,
    n_query: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Flat support and query indices, shapes ``[K]`` and ``[Q]`` int64, disjoint."""
    check_sizes(rule, grid_shape, n_support, n_query)
    n_total = int(np.prod(grid_shape))
    per_time = n_total // grid_shape[0]
    if rule == "random":
        idx = rng.choice(n_total, size=n_support + n_query, replace=False)
        return idx[:n_support].astype(np.int64), idx[n_support:].astype(np.int64)
    if rule == "sensors":
        n_times = grid_shape[0]
        sensors = np.sort(rng.choice(per_time, size=n_support // n_times, replace=False))
        support = (np.arange(n_times)[:, None] * per_time + sensors[None, :]).reshape(-1)
        others = np.setdiff1d(np.arange(per_time), sensors)
        pick = rng.choice(n_times * len(others), size=n_query, replace=False)
        query = (pick // len(others)) * per_time + others[pick % len(others)]
        return support.astype(np.int64), query.astype(np.int64)
    if rule == "initial":
        support = rng.choice(per_time, size=n_support, replace=False)
        query = per_time + rng.choice(n_total - per_time, size=n_query, replace=False)
    else:  # forecast: first time steps hold the support
        n_first = -(-n_support // per_time) * per_time
        support = rng.choice(n_first, size=n_support, replace=False)
        query = n_first + rng.choice(n_total - n_first, size=n_query, replace=False)
    return support.astype(np.int64), query.astype(np.int64)


def check_sizes(rule: str, grid_shape: tuple[int, ...], n_support: int, n_query: int) -> None:
    """Raise :class:`ConfigError` unless ``rule`` can draw K support and Q query points."""
    if rule not in RULES:
        raise ConfigError(f"sampling rule {rule!r} unknown; allowed: {', '.join(RULES)}")
    if n_support < 1 or n_query < 1:
        raise ConfigError(
            f"--support and --query must be >= 1, got support={n_support}, query={n_query}"
        )
    n_total = int(np.prod(grid_shape))
    per_time = n_total // grid_shape[0]
    if rule == "random":
        pool_s, pool_q = n_total, n_total - n_support
    elif rule == "sensors":
        n_times = grid_shape[0]
        if n_support % n_times:
            raise ConfigError(
                f"sampling rule 'sensors': --support={n_support} must be a multiple of the "
                f"number of times {n_times} (support = n_sensors x times); e.g. "
                f"{max(1, n_support // n_times) * n_times}"
            )
        pool_s = n_total
        pool_q = n_total - n_support
    elif rule == "initial":
        pool_s, pool_q = per_time, n_total - per_time
    else:
        n_first = -(-n_support // per_time) * per_time
        pool_s, pool_q = n_total, n_total - n_first
    if n_support > pool_s or n_query > pool_q:
        raise ConfigError(
            f"sampling rule {rule!r} on a grid of shape {grid_shape} (time, *space) cannot "
            f"draw support={n_support} and query={n_query} distinct points "
            f"(at most {pool_s} support, then {max(pool_q, 0)} query)"
        )


def grid_inputs(time: np.ndarray, space: list[np.ndarray]) -> np.ndarray:
    """All grid points as coordinates ``[T * prod(space), 1 + S]`` (t first)."""
    mesh = np.meshgrid(time, *space, indexing="ij")
    return np.stack([m.reshape(-1) for m in mesh], axis=1)


def collocation_points(
    rng: np.random.Generator, n: int, time: np.ndarray, space: list[np.ndarray]
) -> np.ndarray:
    """``n`` points uniform in the space-time box, shape ``[n, 1 + S]`` float64."""
    lows = [time[0], *(s[0] for s in space)]
    highs = [time[-1], *(s[-1] for s in space)]
    return rng.uniform(lows, highs, size=(n, len(lows)))
