"""Concurrent writers and orphaned workers: one writer per output, no worker outlives
its parent, and a lock held by a live process is reported with its PID.

Every wait is bounded; a generation that finishes before it could be raced or killed
(a fast machine) skips the test rather than passing vacuously.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

from scimeta.cli import main
from scimeta.data import GenerationConfig, generate, validate
from scimeta.data.lock import OutputLock
from scimeta.errors import ConfigError, StoreError

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="uses /proc and PR_SET_PDEATHSIG")


def _start(out: Path, family: str, tasks: int, workers: int = 1) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "scimeta", "-q", "generate", family, "--regime", "train",
           "--tasks", str(tasks), "--seed", "3", "--support", "5", "--query", "9",
           "--workers", str(workers), "--out", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def _committed(partial: Path) -> int:
    try:
        with h5py.File(partial, "r", locking=False) as f:
            return int((f["status"][:] >= 0).sum())
    except (OSError, KeyError):
        return 0


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)


def test_second_generate_gets_one_line_with_the_pid_and_changes_nothing(tmp_path, capsys):
    out = tmp_path / "a.h5"
    partial = tmp_path / "a.h5.partial"
    first = _start(out, "oscillator", 500)
    try:
        if not _wait_for(lambda: partial.exists(), first):
            pytest.skip("the first generation finished before it could be raced")
        inode = partial.stat().st_ino
        args = ["generate", "oscillator", "--regime", "train", "--tasks", "500", "--seed", "3",
                "--support", "5", "--query", "9", "--out", str(out)]
        for extra in ([], ["--resume"], ["--overwrite"]):
            if first.poll() is not None:
                pytest.skip("the first generation finished before it could be raced")
            assert main([*args, *extra]) == 2
            err = capsys.readouterr().err.strip()
            assert err.count("\n") == 0 and err.startswith("scimeta: error: ")
            assert f"being written by process {first.pid}" in err
            assert partial.exists() and partial.stat().st_ino == inode
            assert not out.exists() or first.poll() is not None
        assert first.wait(timeout=120) == 0, first.stderr.read().decode()
    finally:
        _stop(first)
    assert validate(out) == [] and not partial.exists()
    assert not (tmp_path / "a.h5.lock").exists()


def test_lock_is_released_with_its_process_and_reentrant_after(tmp_path):
    out = tmp_path / "x.h5"
    with OutputLock(out) as lock:
        assert (tmp_path / "x.h5.lock").read_text().strip() == str(os.getpid())
        code = ("import sys; from pathlib import Path; from scimeta.data.lock import OutputLock\n"
                "try:\n    OutputLock(Path(sys.argv[1])).__enter__()\n"
                "except Exception as e:\n    print(e)\n")
        r = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True,
                           text=True, timeout=60)
        assert f"being written by process {os.getpid()}" in r.stdout
        assert lock.fd is not None
    assert not (tmp_path / "x.h5.lock").exists()
    with OutputLock(out):
        pass


@linux_only
def test_workers_exit_when_the_parent_is_killed_and_resume_continues(tmp_path):
    out = tmp_path / "k.h5"
    partial = tmp_path / "k.h5.partial"
    parent = _start(out, "lorenz", 600, workers=2)
    try:
        if not _wait_for(lambda: _committed(partial) > 0, parent, timeout=90):
            pytest.skip("the generation finished before it could be killed")
        children = Path(f"/proc/{parent.pid}/task/{parent.pid}/children").read_text().split()
        workers = [int(c) for c in children]
        assert len(workers) == 2
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=30)
    finally:
        _stop(parent)

    def gone(pid: int) -> bool:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return True
        return "State:\tZ" in status  # dead, waiting to be reaped

    deadline = time.monotonic() + 20
    while not all(gone(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(gone(w) for w in workers), "workers outlived their parent"
    with OutputLock(out):  # the lock died with the parent
        pass
    with h5py.File(partial, "r+") as f:  # and no worker holds HDF5's lock
        assert f.attrs["complete"] == 0
    # the partial opens for resuming: a different config is refused as such, never as an
    # unreadable or locked file (a full resume would solve the remaining tasks: slow)
    with pytest.raises(ConfigError, match="generated with"):
        generate(GenerationConfig("lorenz", "train", tasks=601, seed=3, support=5, query=9),
                 out, resume=True)


@linux_only
def test_a_reader_blocked_by_a_writer_names_its_pid(tmp_path):
    path = tmp_path / "w.h5"
    generate(GenerationConfig("oscillator", "train", tasks=2), path)
    code = ("import sys, time, h5py\nf = h5py.File(sys.argv[1], 'r+')\nprint('open', "
            "flush=True)\ntime.sleep(30)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        from scimeta.data import TaskReader

        with pytest.raises(StoreError, match=f"locked by process {holder.pid}"):
            TaskReader(path)
    finally:
        holder.kill()
        holder.wait(timeout=30)
