"""One writer per output: an exclusive lock held for a whole generation, and the
processes holding a lock on a file, for messages that name them.

:class:`OutputLock` takes ``<out>.lock`` with ``flock`` and writes its PID into it; a
second writer of the same output is refused at once with that PID, before it
touches anything. The lock dies with its process (the kernel releases it), so a
killed run never leaves a stale lock: the next ``resume`` takes it.
:class:`WaitLock` is the blocking kind: a second process waits for the first to
finish (the suite's steps, shared by several array tasks).
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no locking
    fcntl = None  # type: ignore[assignment]

from ..errors import ConfigError, StoreError

log = logging.getLogger(__name__)

#: the one-line advice for file systems without working locks
HDF5_LOCKING_HINT = ("on a shared file system that does not support file locks (NFS, "
                     "Lustre), set HDF5_USE_FILE_LOCKING=FALSE")
#: errnos of a file system that does not support locks (not: another process holds one)
_NO_LOCKS = {errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP}


class OutputLock:
    """Exclusive lock on output ``out`` (the file ``<out>.lock`` next to it).

    Entering raises :class:`StoreError` naming the holder's PID when another process
    writes ``out``, and :class:`ConfigError` when its folder cannot be written.
    """

    def __init__(self, out: Path) -> None:
        self.out = out
        self.path = out.with_name(out.name + ".lock")
        self.fd: int | None = None

    def __enter__(self) -> OutputLock:
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise ConfigError(f"out={str(self.out)!r}: cannot write in "
                                  f"{str(self.out.parent)!r} ({exc.strerror})") from None
            if fcntl is None:  # pragma: no cover
                break
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                pid = _read_pid(fd)
                os.close(fd)
                who = f"process {pid}" if pid else "another process"
                raise StoreError(
                    f"out={str(self.out)!r} is being written by {who} (lock "
                    f"{self.path.name}); wait for it to finish, or stop it and continue with "
                    "resume=True") from None
            if _same_file(fd, self.path):  # not unlinked by a finishing holder meanwhile
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still held: see _same_file
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


class WaitLock:
    """Exclusive lock file ``path``, waiting while another process holds it.

    Entering blocks until the lock is free (logging the holder's PID once); the lock
    dies with its process. A file system without ``flock`` support is a
    :class:`ConfigError` that says how to proceed without locks.
    """

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        self.fd: int | None = None

    def __enter__(self) -> WaitLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    pid = _read_pid(fd)
                    log.warning("%s is being done by %s; waiting for it", self.what,
                                f"process {pid}" if pid else "another process")
                    fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as exc:
                os.close(fd)
                if exc.errno in _NO_LOCKS:
                    raise ConfigError(
                        f"cannot lock {str(self.path)!r} ({exc.strerror}): this file system "
                        "does not support file locks; run the stores first in one job "
                        "(--stage stores) so that no two array tasks share a step, and "
                        f"{HDF5_LOCKING_HINT}") from None
                raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:  # the file stays: unlinking it would race a waiter
            os.close(self.fd)
            self.fd = None


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def lock_holders(path: str | os.PathLike) -> list[int]:
    """PIDs holding a lock on ``path`` (from /proc/locks; empty where unknown)."""
    try:
        st = os.stat(path)
        with open("/proc/locks") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return []
    key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pids = []
    for line in lines:
        parts = line.split()
        if "->" in parts or len(parts) < 6:
            continue
        if parts[5] == key and parts[4].isdigit() and int(parts[4]) not in pids:
            pids.append(int(parts[4]))
    return pids


def is_lock_error(exc: BaseException) -> bool:
    """Whether an h5py error is about HDF5's file locking: the file is locked by another
    process, or the file system does not support locks."""
    text = str(exc).lower()
    return "unable to lock file" in text or "resource temporarily unavailable" in text


def _unsupported(exc: BaseException | None) -> bool:
    """Whether a lock error says the file system has no locks (not: a holder)."""
    text = str(exc).lower()
    return exc is not None and any(k in text for k in (
        "function not implemented", "no locks available", "operation not supported",
        "errno = 38", "errno = 37", "errno = 95"))


def locked_message(path: str | os.PathLike, action: str,
                   exc: BaseException | None = None) -> str:
    """One line: ``"cannot ACTION 'x': it is locked by process 123 ..."`` naming the
    holders, or (``exc`` says the file system has no locks) that locking is not
    supported; both end with :data:`HDF5_LOCKING_HINT`."""
    if _unsupported(exc):
        return (f"cannot {action} {str(path)!r}: HDF5 could not lock it because the file "
                f"system does not support file locks; {HDF5_LOCKING_HINT}")
    pids = [p for p in lock_holders(path) if p != os.getpid()]
    who = ("process " + ", ".join(map(str, pids))) if pids else "another process"
    return (f"cannot {action} {str(path)!r}: it is locked by {who}, which still has it "
            "open (a generation in progress?); wait for it to finish or stop it, then "
            f"retry; {HDF5_LOCKING_HINT}")
