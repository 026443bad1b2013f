"""A generation killed with SIGKILL resumes without loss or duplication."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from scimeta.data import GenerationConfig, TaskReader, generate
from scimeta.errors import StoreError

N = 1500


def _start(out) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "scimeta", "-q", "generate", "oscillator", "--regime", "train",
           "--tasks", str(N), "--seed", "7", "--support", "5", "--query", "9", "--out", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_kill_then_resume_equals_uninterrupted_run(tmp_path):
    out = tmp_path / "killed.h5"
    partial = tmp_path / "killed.h5.partial"
    proc = _start(out)
    deadline = time.monotonic() + 60
    while not partial.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)  # let it write a few hundred tasks
    if proc.poll() is not None:
        pytest.skip("generation finished before it could be killed (machine too fast)")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "the final path must only appear once complete"
    with pytest.raises(StoreError, match=r"does not exist.*resume"):
        TaskReader(out)
    with h5py.File(partial) as f:
        assert f.attrs["complete"] == 0
        done = int((f["status"][:] >= 0).sum())
    assert 0 < done < N

    cfg = GenerationConfig("oscillator", "train", tasks=N, seed=7, support=5, query=9)
    generate(cfg, out, resume=True, workers=2)
    assert out.exists() and not partial.exists()
    ref = generate(cfg, tmp_path / "ref.h5", workers=1, unit_size=64)
    with h5py.File(out) as a, h5py.File(ref) as b:
        assert a.attrs["complete"] == 1
        for name in ("u", "params", "seed", "status", "support_idx", "query_idx"):
            np.testing.assert_array_equal(a[name][:], b[name][:], err_msg=name)
