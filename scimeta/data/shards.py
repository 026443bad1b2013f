"""Sharded generation: shard files of one store, and merging them into it.

``generate(..., shard=(I, N))`` solves only the contiguous block of tasks
:func:`shard_range` gives shard ``I`` of ``N``, with the seeds and task indices of the
unsharded run, into ``<out stem>.shard-I-of-N.h5`` (:func:`shard_path`). A shard file
has the full layout of the store (tasks outside its block stay ``pending`` and their
fields take no disk space), is written atomically like a store and resumes like one.
It is marked ``complete = 0`` (so it is never read as a store) and
``shard_complete = 1`` once its block is solved. :func:`merge` joins the N shards
into the store an unsharded run writes: the same data, task by task.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..errors import ConfigError, StoreError
from ..family import STATUS_PENDING
from . import _partial as _P
from . import schema

log = logging.getLogger(__name__)

#: per-task variables a merge copies from each shard's block
TASK_VARS = (schema.FIELD, "y0", "params", "seed", "status", "support_idx", "query_idx")
_BLOCK = 64


def parse_shard(text: str, environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """``"I/N"`` -> ``(I, N)``; ``"auto"`` reads ``SLURM_ARRAY_TASK_ID`` (minus
    ``SLURM_ARRAY_TASK_MIN``, default 0) and ``SLURM_ARRAY_TASK_COUNT``.

    Args:
        text: ``"I/N"`` with ``0 <= I < N``, or ``"auto"``.
        environ: environment for ``auto`` (default ``os.environ``).

    Returns:
        (shard index, shard count).
    """
    env = os.environ if environ is None else environ
    if text == "auto":
        try:
            index = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", 0))
            count = int(env["SLURM_ARRAY_TASK_COUNT"])
        except KeyError as exc:
            raise ConfigError(f"shard='auto' needs {exc.args[0]} (run it as a SLURM job "
                              "array, e.g. sbatch --array=0-7) or give shard='I/N'") from None
        except ValueError:
            raise ConfigError("shard='auto': SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT are "
                              "not integers") from None
    else:
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not m:
            raise ConfigError(f"shard={text!r} is not allowed; give I/N (e.g. 0/4) or auto")
        index, count = int(m.group(1)), int(m.group(2))
    if not 0 <= index < count:
        raise ConfigError(f"shard={text!r} gives shard {index} of {count}; need "
                          "0 <= I < N")
    return index, count


def shard_range(n_tasks: int, index: int, count: int) -> tuple[int, int]:
    """Tasks ``[lo, hi)`` of shard ``index`` of ``count`` (sizes differ by at most one)."""
    if not 0 <= index < count or count > n_tasks:
        raise ConfigError(f"shard {index}/{count} is not allowed for {n_tasks} tasks; need "
                          "0 <= I < N <= tasks")
    return index * n_tasks // count, (index + 1) * n_tasks // count


def shard_path(out: str | os.PathLike, index: int, count: int) -> Path:
    """``data/train.h5`` -> ``data/train.shard-I-of-N.h5``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.shard-{index}-of-{count}{out.suffix}")


def find_shards(out: str | os.PathLike) -> list[Path]:
    """The shard files of ``out`` (any count), by shard index."""
    out = Path(out)
    pat = re.compile(re.escape(out.stem) + r"\.shard-(\d+)-of-(\d+)" + re.escape(out.suffix))
    found = [(int(m.group(1)), p) for p in out.parent.glob(f"{out.stem}.shard-*")
             if (m := pat.fullmatch(p.name))]
    return [p for _, p in sorted(found)]


def mark_done(f, index: int, count: int) -> None:
    """Check shard ``index``/``count``'s block in the open file ``f`` and mark it done."""
    lo, hi = shard_range(len(f["status"]), index, count)
    pending = int((f["status"][lo:hi] == STATUS_PENDING).sum())
    if pending:
        raise StoreError(f"{f.filename}: {pending} task(s) of shard {index}/{count} still "
                         "pending after generation")
    f.attrs["shard"] = json.dumps({"index": index, "count": count, "start": lo, "stop": hi})
    f.attrs["shard_complete"] = 1


def _shard_info(path: Path) -> tuple[dict, str]:
    with _P.open_store(path, "r", "merge") as f:
        raw = f.attrs.get("shard")
        done = int(np.asarray(f.attrs.get("shard_complete", 0)).reshape(()))
        config = f.attrs.get("generator_config")
    if raw is None:
        raise StoreError(f"{str(path)!r} is not a shard file (no 'shard' attribute)")
    if not done:
        raise StoreError(f"{str(path)!r} is an unfinished shard; rerun its generate "
                         "command with --resume")
    info = json.loads(raw)
    return info, config.decode() if isinstance(config, bytes) else str(config)


def is_done(path: Path, config_json: str) -> bool:
    """Whether ``path`` is a finished shard of the generation ``config_json``."""
    try:
        _, config = _shard_info(path)
    except StoreError:
        return False
    return config == config_json


def merge(shards: Sequence[str | os.PathLike], out: str | os.PathLike, *,
          overwrite: bool = False) -> Path:
    """Join the finished shard files of one generation into the store ``out``.

    Args:
        shards: every shard file of one run (the same config and shard count, each
            index once); empty: :func:`find_shards` of ``out``.
        out: the store to write (atomically, via ``<out>.partial``).
        overwrite: replace an existing ``out``.

    Returns:
        The path of the merged store: the data of every per-task variable equal to an
        unsharded run's, marked complete.
    """
    out = Path(out)
    paths = [Path(p) for p in shards] or find_shards(out)
    if not paths:
        raise ConfigError(f"no shard files given and none named {shard_path(out, 0, 1).name} "
                          f"(any I-of-N) next to {str(out)!r}")
    if out.exists() and not overwrite:
        raise ConfigError(f"out={str(out)!r} exists; pass overwrite=True to replace it")
    infos = [_shard_info(p) for p in paths]
    configs = {c for _, c in infos}
    counts = {i["count"] for i, _ in infos}
    if len(configs) > 1 or len(counts) > 1:
        raise ConfigError("shards come from different runs (generator_config or shard count "
                          f"differ): {', '.join(str(p) for p in paths)}")
    count = counts.pop()
    have = sorted(i["index"] for i, _ in infos)
    if have != list(range(count)):
        missing = sorted(set(range(count)) - set(have))
        twice = sorted({i for i in have if have.count(i) > 1})
        raise ConfigError(f"shards must be 0..{count - 1} once each; missing {missing}, "
                          f"given twice {twice}")
    order = sorted(range(len(paths)), key=lambda k: infos[k][0]["index"])
    partial = out.with_name(out.name + ".partial")
    shutil.copyfile(paths[order[0]], partial)
    try:
        with _P.open_store(partial, "r+", "write") as dst:
            for k in order[1:]:
                lo, hi = infos[k][0]["start"], infos[k][0]["stop"]
                with _P.open_store(paths[k], "r", "merge") as src:
                    for name in TASK_VARS:
                        if name not in src:
                            continue
                        for a in range(lo, hi, _BLOCK):
                            b = min(hi, a + _BLOCK)
                            dst[name][a:b] = src[name][a:b]
            if (dst["status"][:] == STATUS_PENDING).any():
                raise StoreError(f"merged {len(paths)} shards but tasks are still pending")
            del dst.attrs["shard"]
            del dst.attrs["shard_complete"]
            dst.attrs["complete"] = 1
        os.replace(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    log.info("merged %d shards into %s", count, out)
    return out
