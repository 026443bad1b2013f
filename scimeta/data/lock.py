"""One writer per output: an exclusive lock held for a whole generation, and the
processes holding a lock on a file, for messages that name them.

:class:`OutputLock` takes ``<out>.lock`` with ``flock`` and writes its PID into it; a
second writer of the same output is refused at once with that PID, before it
touches anything. The lock dies with its process (the kernel releases it), so a
killed run never leaves a stale lock: the next ``resume`` takes it.
"""

from __future__ import annotations

import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no locking
    fcntl = None  # type: ignore[assignment]

from ..errors import ConfigError, StoreError


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
    """Whether an h5py error means the file is locked by another process."""
    text = str(exc).lower()
    return "unable to lock file" in text or "resource temporarily unavailable" in text


def locked_message(path: str | os.PathLike, action: str) -> str:
    """``"cannot ACTION 'x': it is locked by process 123 ..."``, naming the holders."""
    pids = [p for p in lock_holders(path) if p != os.getpid()]
    who = ("process " + ", ".join(map(str, pids))) if pids else "another process"
    return (f"cannot {action} {str(path)!r}: it is locked by {who}, which still has it "
            "open (a generation in progress?); wait for it to finish or stop it, then retry")
