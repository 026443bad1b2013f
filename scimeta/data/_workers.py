"""Worker processes for generation that never outlive their parent.

Workers are forked before the store is opened for writing, so none inherits its
HDF5 handle (or HDF5's lock on it); each closes its copy of the output lock and asks
the kernel to kill it when the parent dies (``PR_SET_PDEATHSIG`` on Linux; a
watchdog thread elsewhere). A parent killed with SIGKILL thus leaves no worker
blocked on a pipe holding the file: ``resume`` can continue at once.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int, lock_fd: int | None) -> None:
    """Worker initializer: drop the inherited lock fd, exit when ``parent`` is gone."""
    if lock_fd is not None:
        with contextlib.suppress(OSError):
            os.close(lock_fd)  # the parent's lock stays held by the parent alone
    armed = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
    if not armed:
        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(0.5)
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()


class WorkerPool:
    """``workers`` processes (none for 1) mapping a function over items in order.

    Use as a context manager *before* opening files the workers must not inherit.
    """

    def __init__(self, workers: int, lock_fd: int | None = None) -> None:
        self.workers = workers
        self.lock_fd = lock_fd
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> WorkerPool:
        if self.workers > 1:
            method = "fork" if sys.platform.startswith("linux") else "spawn"
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=mp.get_context(method),
                initializer=_die_with_parent,
                initargs=(os.getpid(), self.lock_fd if method == "fork" else None))
            # with fork, the first submit starts every worker: do it now, before any
            # HDF5 file is open in this process
            self._pool.submit(os.getpid).result()
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if self._pool is not None:
            # on an error, queued units are dropped; running ones finish, unwritten
            self._pool.shutdown(wait=True, cancel_futures=exc_type is not None)
            self._pool = None

    def map(self, fn: Callable[..., Any], items: Iterable[Any], *args: Any) -> Iterator[Any]:
        """``fn(item, *args)`` for each item, results in order."""
        if self._pool is None:
            for item in items:
                yield fn(item, *args)
            return
        futures = [self._pool.submit(fn, item, *args) for item in items]
        try:
            for fut in futures:
                yield fut.result()
        finally:
            for fut in futures:
                fut.cancel()
