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
from scimeta.errors import ConfigError, StoreError

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


# ---- a full disk (here: the file-size limit, ulimit -f) ----------------------------

DISK = ["-q", "generate", "oscillator", "--regime", "train", "--tasks", "200", "--seed", "4",
        "--support", "5", "--query", "9"]
DISK_CFG = GenerationConfig("oscillator", "train", tasks=200, seed=4, support=5, query=9)
LIMIT = 250_000  # bytes: the store needs about 300 kB


def _limited(cwd, code: str) -> subprocess.CompletedProcess:
    """Run python ``code`` in ``cwd`` under a file-size limit of LIMIT bytes."""
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, resource.RLIM_INFINITY))

    return subprocess.run([sys.executable, "-c", code], cwd=cwd, preexec_fn=limit,
                          capture_output=True, text=True, timeout=300)


def _main(args: list[str], before: str = "") -> str:
    return f"import sys\n{before}\nfrom scimeta.cli import main\nsys.exit(main({args!r}))\n"


@pytest.fixture(scope="module")
def disk_ref(tmp_path_factory):
    return generate(DISK_CFG, tmp_path_factory.mktemp("disk") / "ref.h5")


def _same_as_reference(out, ref) -> None:
    with h5py.File(out) as a, h5py.File(ref) as b:
        assert a.attrs["complete"] == 1
        for name in ("u", "y0", "params", "seed", "status", "support_idx", "query_idx"):
            np.testing.assert_array_equal(a[name][:], b[name][:], err_msg=name)


def test_store_too_large_for_the_limit_is_refused_before_any_work(tmp_path):
    r = _limited(tmp_path, _main([*DISK, "--out", "e.h5"]))
    assert r.returncode == 2, r.stderr
    line = r.stderr.strip()
    assert line.count("\n") == 0 and line.startswith("scimeta: error: --tasks=200 makes a ")
    assert "file-size limit" in line and "--skip-space-check" in line
    assert not list(tmp_path.iterdir()), "nothing is written"


def test_full_disk_stops_cleanly_and_resume_loses_nothing(tmp_path, disk_ref):
    r = _limited(tmp_path, _main([*DISK, "--out", "e.h5", "--skip-space-check"]))
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "stopped before running out of space" in r.stderr
    assert "continue with --resume" in r.stderr
    partial = tmp_path / "e.h5.partial"
    with h5py.File(partial) as f:
        done = int((f["status"][:] >= 0).sum())
    assert 0 < done < 200 and not (tmp_path / "e.h5").exists()
    generate(DISK_CFG, tmp_path / "e.h5", resume=True)
    _same_as_reference(tmp_path / "e.h5", disk_ref)


def test_a_write_that_fails_anyway_keeps_every_committed_task(tmp_path, disk_ref):
    """Another process fills the disk: the write itself fails (the guard is switched
    off here); one line, no crash, and the .partial resumes."""
    off = "import scimeta.data._partial as p\np.guard_room = lambda *a: None"
    r = _limited(tmp_path, _main([*DISK, "--out", "e.h5", "--skip-space-check"], off))
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "File too large" in r.stderr
    assert "Traceback" not in r.stderr
    generate(DISK_CFG, tmp_path / "e.h5", resume=True)
    _same_as_reference(tmp_path / "e.h5", disk_ref)


def test_resume_checks_the_complete_flag_not_the_file_name(tmp_path):
    """An unfinished store under the final name (e.g. renamed by hand, or by an old
    racing writer) is continued by resume, not declared complete."""
    cfg = GenerationConfig("oscillator", "train", tasks=6, seed=1, support=3, query=4)
    out = generate(cfg, tmp_path / "x.h5")
    with h5py.File(out, "a") as f:
        f.attrs["complete"] = 0
        status = f["status"][:]
        status[[1, 4]] = -1
        f["status"][:] = status
    generate(cfg, out, resume=True)
    with h5py.File(out) as f:
        assert f.attrs["complete"] == 1 and (f["status"][:] == 0).all()
    assert not (tmp_path / "x.h5.partial").exists()


# ---- a training run resumed with a changed config ----------------------------------

def _train_cfg(store, **over):
    from scimeta.runtime.config import from_dict
    from scimeta.train import TrainConfig

    raw = {"data": {"train": str(store)}, "model": {"hidden": [8]},
           "meta": {"inner_lr": 0.05, "inner_steps": 2, "meta_batch": 4, "baselines": []},
           "optim": {"lr": 1e-2, "iterations": 2},
           "run": {"seed": 3, "checkpoint_every": 1, "validate_every": 5, "log_every": 1}}
    for key, value in over.items():
        section, name = key.split("__")
        raw[section][name] = value
    return from_dict(TrainConfig, raw)


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    return generate(GenerationConfig("oscillator", "unforced-train", tasks=8, support=4,
                                     query=6), tmp_path_factory.mktemp("tr") / "tr.h5")


def test_resume_with_allowed_changes_continues_and_records_them(small_store, tmp_path):
    import json

    import torch

    from scimeta.runtime import load_checkpoint, save_checkpoint
    from scimeta.runtime.seeding import rng_state
    from scimeta.train import RunDir, train

    run = tmp_path / "run"
    assert train(_train_cfg(small_store), run).completed
    rd = RunDir(run)
    params = load_checkpoint(rd.init_path("maml"))["params"]
    rd.init_path("maml").unlink()  # as if stopped after iteration 1
    opt = torch.optim.Adam(list(params.values()), lr=1e-2)
    save_checkpoint(rd.checkpoint, {"phase": "maml", "iteration": 1,
                                    "optimizer": opt.state_dict(), "params": params,
                                    "rng": rng_state(np.random.default_rng(0))})
    new = _train_cfg(small_store, optim__lr=1e-3)
    with pytest.raises(ConfigError, match=r"allow_changes=\['optim.lr'\]"):
        train(new, run, resume=True)
    rd.set_checkpoint_lr(5e-4)
    assert load_checkpoint(rd.checkpoint)["optimizer"]["param_groups"][0]["lr"] == 5e-4
    assert train(new, run, resume=True, allow_changes=["optim.lr"]).completed
    info = json.loads(rd.info.read_text())
    assert [(c["key"], c["old"], c["new"]) for c in info["config_changes"]] == [
        ("optim.lr", 0.01, 0.001)]
    assert rd.load_config().optim.lr == 1e-3 and rd.init_path("maml").exists()


def test_nothing_trained_yet_takes_a_corrected_config(small_store, tmp_path):
    from scimeta.train import RunDir, train

    run = tmp_path / "run"
    RunDir(run).create(_train_cfg(small_store, model__hidden=[5]), {"format": 1})
    assert train(_train_cfg(small_store), run, resume=True).completed
    assert RunDir(run).load_config().model.hidden == (8,)


def test_divergence_says_how_to_continue(small_store, tmp_path, capsys):
    from scimeta.cli import main

    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[data]\ntrain = "{small_store}"\n[model]\nhidden = [8]\n[meta]\n'
                   'inner_lr = 1e12\nmeta_batch = 4\nbaselines = []\n[optim]\n'
                   'iterations = 5\n[run]\ncheckpoint_every = 1\n')
    assert main(["-q", "train", str(cfg), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "meta-loss became" in err
    assert "--allow-config-change optim.lr meta.inner_lr" in err
