"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every writer goes through :func:`atomic_path`: the content is written to a uniquely
named temporary file in the target's folder (so concurrent writers never share one,
and the final rename stays on one filesystem), made readable by the group (mkstemp
creates it 0600), and renamed over the target with ``os.replace``. A failure or an
interrupt removes the temporary file and leaves the previous target as it was.
The temporary name keeps the target's suffix (``.x.nc.abc123.tmp.nc``), so writers
that infer a format from the name (matplotlib's ``savefig``) still do so.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: permissions of a finished file (mkstemp's 0600 would hide it from the group)
MODE = 0o644


@contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary path next to ``path``; rename it over ``path`` on success.

    Args:
        path: the file to (re)write; its folder must exist.
        fsync: flush the written file to disk before the rename (checkpoints).

    The body writes the temporary path by name (it exists, empty). On any exception,
    the temporary file is removed and the exception propagates; ``path`` is untouched.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix,
                                dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, MODE)
        if fsync:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any, **dumps: Any) -> Path:
    """Write ``obj`` as JSON (``indent=2`` unless ``dumps`` says otherwise) atomically."""
    return write_text(path, json.dumps(obj, **{"indent": 2, **dumps}) + "\n")


def write_netcdf(ds: Any, path: str | os.PathLike) -> Path:
    """Write an ``xarray.Dataset`` to ``path`` atomically (h5netcdf engine)."""
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")
    return Path(path)


def save_figure(fig: Any, path: str | os.PathLike, **savefig: Any) -> Path:
    """Save a matplotlib figure to ``path`` atomically (``savefig`` keywords passed on;
    the format follows ``path``'s suffix)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, **savefig)
    return Path(path)
