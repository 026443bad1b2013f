"""Reading task stores for training: lazy, fork-safe, random access by task.

:class:`TaskReader` is a ``torch.utils.data.Dataset`` over the *ok* tasks of a store
(tasks with another status are skipped and counted). Each process opens its own
HDF5 handle on first access, so DataLoader workers (fork or spawn) never share
one. ``in_memory=True`` reads everything once, for files that fit.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..batch import TaskBatch
from ..errors import ConfigError, StoreError
from ..typing import Indices
from . import schema
from ._chunks import read_tasks
from .sampling import collocation_points, grid_inputs, sample_indices
from .store import StoreMeta, open_h5, read_meta

log = logging.getLogger(__name__)


class TaskReader(torch.utils.data.Dataset):
    """Support/query (and collocation) sets of the ok tasks of one store.

    Parameters
    ----------
    path: the ``.h5`` store.
    in_memory: load all fields at construction (fast random access).
    n_collocation: collocation points per task, uniform in the space-time box,
        drawn from ``(collocation_seed, task)``; 0 disables them.
    resample_seed: if given, support/query indices are redrawn with the file's
        rule and sizes (or ``support``/``query`` if given) from ``(resample_seed,
        task)`` instead of using the stored ones.
    allow_incomplete: read the ok tasks of a store whose generation did not finish.
    dtype: floating dtype of the returned tensors.
    """

    def __init__(
        self, path: str | os.PathLike, *, in_memory: bool = False, n_collocation: int = 0,
        collocation_seed: int = 0, resample_seed: int | None = None,
        support: int | None = None, query: int | None = None,
        allow_incomplete: bool = False, dtype: torch.dtype = torch.float32,
    ) -> None:
        self.path = Path(path)
        with open_h5(self.path) as f:
            self.meta: StoreMeta = read_meta(f, self.path)
            if not self.meta.complete and not allow_incomplete:
                raise StoreError(
                    f"{str(self.path)!r} is marked incomplete (generation did not finish); "
                    "resume it or pass allow_incomplete=True"
                )
            try:
                self._support = f["support_idx"][:]
                self._query = f["query_idx"][:]
                self._params = f["params"][:]
                self._fields = f[schema.FIELD][:] if in_memory else None
            except OSError as exc:
                raise _damaged(self.path, "", exc) from None
        if n_collocation < 0:
            raise ConfigError(f"n_collocation must be >= 0, got {n_collocation}")
        self.tasks = self.meta.ok
        skipped = len(self.meta.status) - len(self.tasks)
        if skipped:
            log.warning("%s: skipping %d of %d tasks whose status is not ok", self.path,
                        skipped, len(self.meta.status))
        if len(self.tasks) == 0:
            raise StoreError(f"{str(self.path)!r} has no task with status ok")
        if resample_seed is not None:
            self._resample(resample_seed, support, query)
        self.n_collocation = n_collocation
        self.collocation_seed = collocation_seed
        self.dtype = dtype
        self._inputs = grid_inputs(self.meta.time, list(self.meta.space))
        self._handle = None
        self._pid = None

    # ---- process-local handle ----------------------------------------------
    def _file(self):
        if self._handle is None or self._pid != os.getpid():
            self._handle = open_h5(self.path)
            self._pid = os.getpid()
        return self._handle

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_handle"] = None
        return state

    def close(self) -> None:
        if self._handle is not None and self._pid == os.getpid():
            self._handle.close()
        self._handle = None

    # ---- access -------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.tasks)

    @property
    def in_dim(self) -> int:
        return 1 + len(self.meta.space)

    @property
    def out_dim(self) -> int:
        return len(self.meta.state_names)

    @property
    def params(self) -> np.ndarray:
        """Physical parameters of the ok tasks, ``[n_ok, P]`` float64 (as stored)."""
        return self._params[self.tasks]

    def fields(self, i: int) -> np.ndarray:
        """The full solution of the i-th ok task, ``[T, *space, C]`` (stored dtype)."""
        task = int(self.tasks[i])
        if self._fields is not None:
            return self._fields[task]
        try:
            return self._file()[schema.FIELD][task]
        except OSError as exc:
            raise _damaged(self.path, f"task {task}", exc) from None

    def check_data(self) -> None:
        """Raise :class:`StoreError` naming the first ok task whose fields or parameters
        are not finite, or whose support/query indices leave the grid (a store edited or
        damaged after generation), so training never starts on them."""
        n_grid = int(np.prod(self.meta.grid_shape))
        for name, idx in (("support", self._support), ("query", self._query)):
            sel = idx[self.tasks]
            bad = self.tasks[((sel < 0) | (sel >= n_grid)).any(axis=1)] if sel.size else []
            if len(bad):
                raise StoreError(f"{str(self.path)!r}: task {int(bad[0])} is marked ok but its "
                                 f"{name} indices leave the grid [0, {n_grid}); regenerate "
                                 "the store (`scimeta validate` lists every problem)")
        bad_p = self.tasks[~np.isfinite(self._params[self.tasks]).all(axis=1)]
        if len(bad_p):
            raise StoreError(f"{str(self.path)!r}: task {int(bad_p[0])} is marked ok but its "
                             "parameters are not finite; regenerate the store")
        step = 256
        for start in range(0, len(self.tasks), step):
            tasks = self.tasks[start:start + step]
            if self._fields is not None:
                block = self._fields[tasks]
            else:
                try:
                    block = self._file()[schema.FIELD][tasks]
                except OSError as exc:
                    raise _damaged(self.path, f"tasks {int(tasks[0])}..{int(tasks[-1])}",
                                   exc) from None
            finite = np.isfinite(block.reshape(len(tasks), -1)).all(axis=1)
            if not finite.all():
                task = int(tasks[np.flatnonzero(~finite)[0]])
                raise StoreError(f"{str(self.path)!r}: task {task} is marked ok but holds "
                                 "non-finite values; regenerate the store (or set its status "
                                 "to non-finite) — `scimeta validate` lists every problem")

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        """(support_x, support_y, query_x, query_y, collocation_x, params) of one task."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"task index {i} out of range for {len(self)} ok tasks")
        arrays = self._arrays(self.tasks[[i]], self.fields(i)[None])
        return tuple(a[0] for a in arrays)

    def _arrays(self, tasks: np.ndarray, fields: np.ndarray) -> tuple[torch.Tensor, ...]:
        """Gather the sets of ``tasks`` ``[B]`` from their fields ``[B, T, *space, C]``
        with a few vectorized index operations (no per-task Python work but the
        collocation draws), as tensors ``[B, ...]``."""
        flat = fields.reshape(len(tasks), -1, self.out_dim)
        s, q = self._support[tasks], self._query[tasks]
        colloc = np.zeros((len(tasks), 0, self.in_dim))
        if self.n_collocation:
            colloc = np.stack([
                collocation_points(np.random.default_rng([self.collocation_seed, int(t)]),
                                   self.n_collocation, self.meta.time, list(self.meta.space))
                for t in tasks])
        out = (self._inputs[s], np.take_along_axis(flat, s[..., None], axis=1),
               self._inputs[q], np.take_along_axis(flat, q[..., None], axis=1), colloc,
               self._params[tasks])
        return tuple(torch.as_tensor(a, dtype=self.dtype) for a in out)

    def batch(self, indices: Indices) -> TaskBatch:
        """A :class:`TaskBatch` of the given ok-task indices (``[B, K, d]`` tensors).

        From disk, each distinct task is read on its own (:func:`._chunks.read_tasks`:
        its raw chunk decoded directly where possible); h5py's list selection
        ``u[[i, j, ...]]`` costs several times more (bench_train.py).
        """
        tasks = self.tasks[np.asarray(indices, dtype=np.int64) % len(self)]
        if self._fields is not None:
            fields = self._fields[tasks]
        else:
            uniq, inverse = np.unique(tasks, return_inverse=True)
            try:
                fields = read_tasks(self._file(), schema.FIELD, uniq)[inverse]
            except OSError as exc:
                raise _damaged(self.path, f"tasks {uniq.tolist()[:5]}", exc) from None
        sx, sy, qx, qy, cx, p = self._arrays(tasks, fields)
        return TaskBatch(sx, sy, qx, qy, cx if cx.shape[1] else None, p)

    def sample(self, batch_size: int, generator: np.random.Generator) -> TaskBatch:
        """A meta-batch of ``batch_size`` distinct tasks drawn with ``generator``."""
        return self.batch(self.sample_indices(batch_size, generator))

    def sample_indices(self, batch_size: int, generator: np.random.Generator) -> np.ndarray:
        """The ok-task indices ``[batch_size]`` (distinct) that :meth:`sample` draws; ranks
        that share ``generator``'s state draw the same meta-batch and each reads its share."""
        if not 1 <= batch_size <= len(self):
            raise ConfigError(f"batch_size must be in [1, {len(self)}], got {batch_size}")
        return generator.choice(len(self), size=batch_size, replace=False)

    def _resample(self, seed: int, support: int | None, query: int | None) -> None:
        rule = self.meta.attrs_json("sampling")
        k = support or rule["support"]
        q = query or rule["query"]
        sup = np.empty((len(self._support), k), np.int64)
        qry = np.empty((len(self._query), q), np.int64)
        for task in range(len(sup)):
            rng = np.random.default_rng([seed, task])
            sup[task], qry[task] = sample_indices(rule["rule"], rng, self.meta.grid_shape, k, q)
        self._support, self._query = sup, qry


def _damaged(path: Path, what: str, exc: OSError) -> StoreError:
    reason = str(exc).split("(")[0].strip() or type(exc).__name__
    where = f" {what}" if what else ""
    return StoreError(f"{str(path)!r}: cannot read{where} ({reason}): the file is damaged "
                      "(a corrupted chunk?); regenerate it or restore a copy")


def collate(items: Sequence[tuple[torch.Tensor, ...]]) -> TaskBatch:
    """Stack per-task tuples from :meth:`TaskReader.__getitem__` into a TaskBatch."""
    sx, sy, qx, qy, cx, p = (torch.stack(col) for col in zip(*items, strict=True))
    return TaskBatch(sx, sy, qx, qy, cx if cx.shape[1] else None, p)
