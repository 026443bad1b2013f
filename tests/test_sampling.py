"""Support/query sampling rules on a (time, *space) grid: sizes, disjointness, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from scimeta.data.sampling import RULES, check_sizes, sample_indices
from scimeta.errors import ConfigError

GRID = (5, 8, 6)  # time, x, y


@pytest.mark.parametrize("rule", RULES)
def test_every_rule_gives_disjoint_sets_of_the_requested_sizes(rule):
    s, q = sample_indices(rule, np.random.default_rng(0), GRID, 10, 40)
    assert s.shape == (10,) and q.shape == (40,)
    assert s.dtype == q.dtype == np.int64
    assert len(np.unique(s)) == 10 and len(np.unique(q)) == 40
    assert not set(s) & set(q)
    assert s.min() >= 0 and max(s.max(), q.max()) < np.prod(GRID)


def test_sensors_support_is_full_time_series_at_fixed_locations():
    n_times, per_time = GRID[0], GRID[1] * GRID[2]
    s, q = sample_indices("sensors", np.random.default_rng(3), GRID, 3 * n_times, 50)
    t_s, loc_s = np.divmod(s, per_time)
    sensors = np.unique(loc_s)
    assert len(sensors) == 3  # n_sensors = K // n_times
    for loc in sensors:  # every time at every sensor
        assert sorted(t_s[loc_s == loc]) == list(range(n_times))
    _, loc_q = np.divmod(q, per_time)
    assert not set(loc_q) & set(sensors)  # query only at other locations
    assert len(np.unique(np.divmod(q, per_time)[0])) > 1  # query spans several times


def test_sensors_is_deterministic_given_the_rng():
    a = sample_indices("sensors", np.random.default_rng(7), GRID, 10, 30)
    b = sample_indices("sensors", np.random.default_rng(7), GRID, 10, 30)
    c = sample_indices("sensors", np.random.default_rng(8), GRID, 10, 30)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])


def test_sensors_errors_name_the_argument():
    with pytest.raises(ConfigError, match=r"--support=7 must be a multiple of the number of "
                                          r"times 5"):
        check_sizes("sensors", GRID, 7, 10)
    # all 48 locations as sensors leave no query points
    with pytest.raises(ConfigError, match="cannot draw support=240 and query=1"):
        check_sizes("sensors", GRID, 240, 1)
    with pytest.raises(ConfigError, match=r"sampling rule 'probes' unknown; allowed: .*sensors"):
        check_sizes("probes", GRID, 5, 5)


def test_ode_grid_with_one_sensor():
    # ODE stores have grid (T,): one 'location', the whole trajectory is the support
    with pytest.raises(ConfigError, match="query=1"):
        check_sizes("sensors", (10,), 10, 1)
