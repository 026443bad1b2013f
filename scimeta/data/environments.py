"""Environments for the forecasting setting (the LEADS/CoDA protocol).

A store of a literature regime (``leads``, ``coda-train``, ``coda-adapt``, ...) holds
one trajectory per task, and the tasks of one environment share one parameter
vector. :class:`EnvironmentReader` groups the ok tasks by their (identical)
parameter vectors and serves meta-batches in which one task is one environment:
adapt on ``n_support_traj`` trajectories, forecast ``n_query_traj`` others from their
initial states. Inputs and targets match :class:`scimeta.nn.Forecaster`::

    reader = EnvironmentReader("train.h5", n_support_traj=1)
    model = Forecaster(VectorFieldNet(reader.state_dim), reader.time, substeps=4)
    batch = reader.sample(9, numpy.random.default_rng(0))   # TaskBatch, one env per task
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from ..batch import TaskBatch
from ..errors import ConfigError
from ..typing import Indices
from .reader import TaskReader
from .store import open_h5


class _Grouped:
    """The ok tasks of one store grouped by parameter vector (first-appearance order)."""

    def __init__(self, path: str | os.PathLike, in_memory: bool, allow_incomplete: bool,
                 dtype: torch.dtype) -> None:
        #: state channels to serve (indices into the store's state names; None: all)
        self.channels: list[int] | None = None
        self.reader = TaskReader(path, in_memory=in_memory, allow_incomplete=allow_incomplete,
                                 dtype=dtype)
        with open_h5(self.reader.path) as f:
            params = np.asarray(f["params"][:], dtype=np.float64)[self.reader.tasks]
        uniq, first, inverse = np.unique(params, axis=0, return_index=True,
                                         return_inverse=True)
        order = np.argsort(first, kind="stable")
        self.params = uniq[order]                                   # [E, P]
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        env_of = rank[np.asarray(inverse).reshape(-1)]
        #: positions in ``reader`` (ok-task indices) of each environment's trajectories
        self.members = [np.flatnonzero(env_of == e) for e in range(len(order))]

    def find(self, p: np.ndarray) -> int | None:
        hit = np.flatnonzero(np.all(self.params == p, axis=1))
        return int(hit[0]) if len(hit) else None

    def trajectories(self, positions: Indices) -> np.ndarray:
        """Trajectories ``[N, T, S]`` (S = state size, channels x spatial points)."""
        out = [self.reader.fields(int(i)) for i in positions]
        if self.channels is not None:
            out = [a[..., self.channels] for a in out]
        t = len(self.reader.meta.time)
        return np.stack([a.reshape(t, -1) for a in out]) if out else np.zeros((0, t, 0))


class EnvironmentReader:
    """Forecasting meta-batches over the environments of a task store.

    Parameters
    ----------
    path: the ``.h5`` store (one trajectory per task).
    n_support_traj: trajectories per environment to adapt on (Ks).
    n_query_traj: trajectories per environment to forecast (Kq), disjoint from the
        support ones; ``None`` takes every remaining one (the smallest environment's
        count minus Ks).
    query_path: optional second store of the same environments (e.g. CoDA's
        ``adapt-test.h5`` for ``adapt.h5``); query trajectories are then drawn from it,
        environments matched by exactly equal parameter vectors.
    in_memory: load all trajectories at construction (else read lazily, fork-safe).
    dtype: floating dtype of the returned tensors.
    states: names of the state channels to serve, in the store's order or any order
        (e.g. ``("omega",)`` of a Navier-Stokes store that also holds ``psi``); None
        serves every channel.

    Attributes: ``time`` ``[T]`` (the grid, for ``Forecaster``), ``params`` ``[E, P]``
    float64 (one row per environment), ``counts`` ``[E]`` trajectories per environment
    and ``env_tasks`` their store task indices (in ``path``), ``param_names``,
    ``state_names`` (the served channels), ``state_dim`` (S), ``n_times`` (T).
    """

    def __init__(self, path: str | os.PathLike, n_support_traj: int = 1,
                 n_query_traj: int | None = None, *, query_path: str | os.PathLike | None = None,
                 in_memory: bool = True, allow_incomplete: bool = False,
                 dtype: torch.dtype = torch.float32,
                 states: Sequence[str] | None = None) -> None:
        self._sup = _Grouped(path, in_memory, allow_incomplete, dtype)
        self._qry = (self._sup if query_path is None
                     else _Grouped(query_path, in_memory, allow_incomplete, dtype))
        meta = self._sup.reader.meta
        self.state_names = tuple(meta.state_names)
        if states is not None:
            names = list(meta.state_names)
            if isinstance(states, str) or not states or any(s not in names for s in states):
                raise ConfigError(f"states={states!r} is not allowed; give a non-empty "
                                  f"list of the store's state names {names}")
            self.state_names = tuple(states)
            self._sup.channels = self._qry.channels = [names.index(s) for s in states]
        self.path = self._sup.reader.path
        self.param_names = meta.param_names
        self.dtype = dtype
        self.time = torch.as_tensor(meta.time, dtype=dtype)
        self.params = self._sup.params
        self.counts = np.array([len(m) for m in self._sup.members])
        #: store task indices (rows of ``u``) of each environment's trajectories
        self.env_tasks = [self._sup.reader.tasks[m] for m in self._sup.members]
        self.n_times = len(meta.time)
        self.state_dim = len(self.state_names) * int(np.prod(meta.grid_shape[1:], dtype=int))
        self._check_query_store()
        self.n_support_traj = _count("n_support_traj", n_support_traj, minimum=1)
        own = self._qry is self._sup
        avail = [len(self._qry.members[q]) - (self.n_support_traj if own else 0)
                 for q in self._query_env]
        if n_query_traj is None:
            n_query_traj = max(min(avail), 1)  # too few: the check below names the env
        self.n_query_traj = _count("n_query_traj", n_query_traj, minimum=1)
        for e, q in enumerate(self._query_env):
            n_s, n_q = len(self._sup.members[e]), len(self._qry.members[q])
            if own and n_s < self.n_support_traj + self.n_query_traj:
                raise ConfigError(
                    f"environment {self.describe(e)} of {str(self.path)!r} has {n_s} "
                    f"trajectories; n_support_traj={self.n_support_traj} + n_query_traj="
                    f"{self.n_query_traj} = {self.n_support_traj + self.n_query_traj} needed")
            if not own and (n_s < self.n_support_traj or n_q < self.n_query_traj):
                raise ConfigError(
                    f"environment {self.describe(e)} has {n_s} trajectories in "
                    f"{str(self.path)!r} and {n_q} in {str(self._qry.reader.path)!r}; "
                    f"n_support_traj={self.n_support_traj} and n_query_traj="
                    f"{self.n_query_traj} needed")

    def _check_query_store(self) -> None:
        if self._qry is self._sup:
            self._query_env = list(range(len(self.params)))
            return
        qm, sm = self._qry.reader.meta, self._sup.reader.meta
        if (qm.param_names, qm.state_names) != (sm.param_names, sm.state_names) or not (
                qm.time.shape == sm.time.shape and np.array_equal(qm.time, sm.time)):
            raise ConfigError(f"{str(qm.path)!r} does not match {str(sm.path)!r} "
                              "(parameters, state names or time grid differ)")
        found = [self._qry.find(p) for p in self.params]
        missing = [self.describe(e) for e, q in enumerate(found) if q is None]
        if missing:
            raise ConfigError(f"{str(qm.path)!r} has no trajectory of environment(s) "
                              f"{'; '.join(missing)}")
        self._query_env = [int(q) for q in found]  # type: ignore[arg-type]

    # ---- access -------------------------------------------------------------
    def __len__(self) -> int:
        """Number of environments E."""
        return len(self.params)

    def describe(self, env: int) -> str:
        """``(alpha=0.5, beta=0.625, ...)`` for environment ``env``."""
        vals = ", ".join(f"{n}={v:g}" for n, v in zip(self.param_names, self.params[env],
                                                      strict=True))
        return f"({vals})"

    def trajectories(self, env: int, query_store: bool = False) -> torch.Tensor:
        """All trajectories of environment ``env``, ``[N, T, S]`` (of the query store)."""
        grouped = self._qry if query_store else self._sup
        e = self._query_env[env] if query_store else env
        return torch.as_tensor(grouped.trajectories(grouped.members[e]), dtype=self.dtype)

    def _split(self, env: int, rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
        ks, kq = self.n_support_traj, self.n_query_traj
        sup = self._sup.members[env]
        sup = sup if rng is None else rng.permutation(sup)
        if self._qry is self._sup:
            return sup[:ks], sup[ks:ks + kq]
        qry = self._qry.members[self._query_env[env]]
        return sup[:ks], (qry if rng is None else rng.permutation(qry))[:kq]

    def batch(self, envs: Indices, rng: np.random.Generator | None = None) -> TaskBatch:
        """A TaskBatch with one task per environment in ``envs``.

        support_x ``[B, Ks, S]`` initial states and support_y ``[B, Ks, T*S]`` the
        trajectories flattened time-major (``Forecaster``'s output); query_x
        ``[B, Kq, S]``, query_y ``[B, Kq, T*S]`` from other trajectories; params
        ``[B, P]``; collocation_x None. Trajectories are drawn with ``rng``, or
        the first ones in store order when ``rng`` is None.
        """
        envs = [int(e) for e in envs]
        bad = [e for e in envs if not 0 <= e < len(self)]
        if bad or not envs:
            raise ConfigError(f"environment indices must be in [0, {len(self)}), got {envs}")
        parts: list[list[np.ndarray]] = [[], [], []]
        for e in envs:
            s, q = self._split(e, rng)
            parts[0].append(self._sup.trajectories(s))
            parts[1].append(self._qry.trajectories(q))
            parts[2].append(self.params[e])
        sup, qry = (torch.as_tensor(np.stack(a), dtype=self.dtype) for a in parts[:2])
        return TaskBatch(sup[:, :, 0], sup.flatten(-2), qry[:, :, 0], qry.flatten(-2),
                         None, torch.as_tensor(np.stack(parts[2]), dtype=self.dtype))

    def sample(self, batch_size: int, rng: np.random.Generator) -> TaskBatch:
        """A meta-batch of ``batch_size`` distinct environments drawn with ``rng``."""
        if not 1 <= batch_size <= len(self):
            raise ConfigError(f"batch_size must be in [1, {len(self)}], got {batch_size}")
        return self.batch(rng.choice(len(self), size=batch_size, replace=False), rng)

    def close(self) -> None:
        """Close the lazily opened HDF5 handles."""
        self._sup.reader.close()
        self._qry.reader.close()


def _count(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name}={value!r} is not allowed; it must be an int >= {minimum}")
    return int(value)
