"""Where this process stands in a distributed job: torchrun, then SLURM, else alone.

:func:`detect` reads the launcher's environment (pure: pass any mapping), and
:func:`process_group` initialises ``torch.distributed`` from it for the length of a
``with`` block (gloo on CPU, NCCL on CUDA), with a timeout on every collective so
that a rank that fails ends the others with an error instead of a hang. A plain
``python``/``scimeta`` process is a world of one and needs no process group.

Launchers recognised, in this order:

* ``torchrun``: ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``.
* ``srun`` (a job step): ``SLURM_PROCID``, ``SLURM_STEP_NUM_TASKS`` (else
  ``SLURM_NTASKS``), ``SLURM_LOCALID``; the master is the first host of
  ``SLURM_STEP_NODELIST`` (else ``SLURM_JOB_NODELIST``/``SLURM_NODELIST``) unless
  ``MASTER_ADDR`` is set, on ``MASTER_PORT`` or a port derived from the job id.
  A batch script itself (no ``SLURM_STEP_ID``) is a single process.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch

from ..errors import ConfigError

#: Seconds a collective may wait for the other ranks (``SCIMETA_DIST_TIMEOUT`` overrides).
DEFAULT_TIMEOUT = 600.0
DEFAULT_PORT = 29500


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job (``world_size == 1``: not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = DEFAULT_PORT
    launcher: str = "single"

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this rank writes logs, metrics, checkpoints and inits."""
        return self.rank == 0


def _int(environ: Mapping[str, str], name: str, default: int | None = None) -> int:
    raw = environ.get(name)
    if raw is None:
        if default is None:
            raise ConfigError(f"environment variable {name} is not set")
        return default
    try:
        return int(raw.strip().split("(")[0])  # SLURM_NTASKS may read like "4(x2)"
    except ValueError:
        raise ConfigError(f"environment variable {name}={raw!r} is not an integer") from None


def _split_top(text: str) -> list[str]:
    """Split ``text`` at commas that are not inside brackets."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise ConfigError(f"hostlist {text!r} has an unmatched ']'")
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if depth:
        raise ConfigError(f"hostlist {text!r} has an unmatched '['")
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def _expand_range(spec: str, text: str) -> list[str]:
    """``01-03,07`` -> ``["01", "02", "03", "07"]`` (zero padding kept)."""
    out: list[str] = []
    for item in spec.split(","):
        m = re.fullmatch(r"\s*(\d+)(?:-(\d+))?\s*", item)
        if not m:
            raise ConfigError(f"hostlist {text!r}: range item {item!r} is not N or N-M")
        lo, hi = m.group(1), m.group(2) or m.group(1)
        if int(hi) < int(lo):
            raise ConfigError(f"hostlist {text!r}: range {item!r} runs backwards")
        width = len(lo) if lo.startswith("0") else 0
        out += [str(i).zfill(width) for i in range(int(lo), int(hi) + 1)]
    return out


def expand_hostlist(text: str) -> list[str]:
    """Expand a SLURM compressed hostlist.

    Args:
        text: e.g. ``"node[01-03,07]"``, ``"a1,b[2-3]"``, ``"r[1-2]n[01-02]"``.

    Returns:
        The host names in SLURM's order, e.g. ``["node01", "node02", "node03", "node07"]``.
    """
    hosts: list[str] = []
    for part in _split_top(text):
        pieces = re.split(r"\[([^\]]*)\]", part)  # text, range, text, range, ..., text
        choices = [[p] if i % 2 == 0 else _expand_range(p, text)
                   for i, p in enumerate(pieces)]
        hosts += ["".join(c) for c in itertools.product(*choices)]
    if not hosts:
        raise ConfigError(f"hostlist {text!r} names no host")
    return hosts


def first_host(text: str) -> str:
    """The first host of a SLURM hostlist (the rendezvous address of rank 0)."""
    return expand_hostlist(text)[0]


def detect(environ: Mapping[str, str] | None = None) -> DistEnv:
    """The job layout from a launcher's environment variables (``os.environ`` if None)."""
    env = os.environ if environ is None else environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return _checked(DistEnv(
            _int(env, "RANK"), _int(env, "WORLD_SIZE"), _int(env, "LOCAL_RANK", 0),
            env.get("MASTER_ADDR", "127.0.0.1"), _int(env, "MASTER_PORT", DEFAULT_PORT),
            "torchrun"))
    if "SLURM_PROCID" in env and ("SLURM_STEP_ID" in env or "SLURM_STEPID" in env):
        world = _int(env, "SLURM_STEP_NUM_TASKS") if "SLURM_STEP_NUM_TASKS" in env \
            else _int(env, "SLURM_NTASKS", 1)
        if world > 1:
            nodes = next((env[k] for k in ("SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST",
                                           "SLURM_NODELIST") if env.get(k)), None)
            addr = env.get("MASTER_ADDR") or (first_host(nodes) if nodes else None)
            if addr is None:
                raise ConfigError("SLURM job step without SLURM_STEP_NODELIST, "
                                  "SLURM_JOB_NODELIST, SLURM_NODELIST or MASTER_ADDR")
            port = _int(env, "MASTER_PORT",
                        DEFAULT_PORT + _int(env, "SLURM_JOB_ID", 0) % 10000)
            return _checked(DistEnv(_int(env, "SLURM_PROCID"), world,
                                    _int(env, "SLURM_LOCALID", 0), addr, port, "slurm"))
    return DistEnv()


def _checked(e: DistEnv) -> DistEnv:
    if e.world_size < 1 or not 0 <= e.rank < e.world_size:
        raise ConfigError(f"{e.launcher} environment: rank {e.rank} with world size "
                          f"{e.world_size} is not allowed; need 0 <= rank < world size")
    if not 0 < e.master_port < 65536:
        raise ConfigError(f"{e.launcher} environment: master port {e.master_port} is not "
                          "in 1..65535")
    return e


def timeout_seconds(environ: Mapping[str, str] | None = None) -> float:
    """Collective timeout in seconds: ``SCIMETA_DIST_TIMEOUT`` or :data:`DEFAULT_TIMEOUT`."""
    env = os.environ if environ is None else environ
    raw = env.get("SCIMETA_DIST_TIMEOUT")
    if raw is None:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ConfigError(f"SCIMETA_DIST_TIMEOUT={raw!r} is not allowed; give seconds > 0")
    return value


def wait_mode(environ: Mapping[str, str] | None = None) -> str:
    """How a rank waits for a CPU (gloo) all-reduce: ``SCIMETA_DIST_WAIT``, ``"poll"``
    (default: poll the pending work, yielding the core between polls) or ``"block"``
    (sleep in the collective until it completes)."""
    env = os.environ if environ is None else environ
    raw = env.get("SCIMETA_DIST_WAIT", "poll")
    if raw not in ("poll", "block"):
        raise ConfigError(f"SCIMETA_DIST_WAIT={raw!r} is not allowed; use 'poll' or 'block'")
    return raw


def local_device(env: DistEnv, device: torch.device) -> torch.device:
    """``device`` made rank-local: under several ranks, plain ``cuda`` becomes
    ``cuda:<local_rank mod GPUs>`` (an explicit ``cuda:N`` is kept)."""
    if env.distributed and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", env.local_rank % max(torch.cuda.device_count(), 1))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


@contextmanager
def process_group(device: torch.device, env: DistEnv | None = None,
                  timeout: float | None = None) -> Iterator[DistEnv]:
    """Initialise ``torch.distributed`` for the block when the job has several ranks.

    Args:
        device: where this rank computes (``cuda`` selects NCCL, anything else gloo).
        env: the layout (default: :func:`detect`).
        timeout: seconds a collective may wait (default: :func:`timeout_seconds`).

    Returns:
        A context manager yielding the :class:`DistEnv`. A group that is already
        initialised (e.g. by a test) is used as it is and left alone on exit.
    """
    import torch.distributed as dist

    env = detect() if env is None else env
    if not env.distributed or dist.is_initialized():
        yield env
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    seconds = timeout_seconds() if timeout is None else timeout
    wait_mode()  # a bad SCIMETA_DIST_WAIT stops here, before any step is taken
    try:
        dist.init_process_group(
            backend, init_method=f"tcp://{env.master_addr}:{env.master_port}",
            rank=env.rank, world_size=env.world_size, timeout=timedelta(seconds=seconds))
    except Exception as exc:  # any start-up failure gets the same hint
        raise ConfigError(
            f"rank {env.rank}/{env.world_size} ({env.launcher}) could not join the process "
            f"group at {env.master_addr}:{env.master_port} within {seconds:g} s: {exc}"
        ) from None
    try:
        yield env
    finally:
        dist.destroy_process_group()
