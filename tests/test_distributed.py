"""Meta-gradients averaged across ranks equal the single-process meta-gradient.

Two gloo processes each take part of a meta-batch (4 + 5 tasks, uneven on purpose),
compute their exact second-order meta-gradient and average it with
``allreduce_mean``; the result must equal the meta-gradient of the whole batch in one
process to 1e-12 relative (float64; only the summation order differs).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from scimeta.errors import ConfigError
from scimeta.meta import MAML, TaskBatch
from scimeta.runtime.dist_env import (
    DEFAULT_TIMEOUT,
    DistEnv,
    detect,
    expand_hostlist,
    first_host,
    process_group,
    timeout_seconds,
    wait_mode,
)
from scimeta.train.distributed import allreduce_mean, shard

DT = torch.float64


def setup():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 2)).to(DT)
    g = torch.Generator().manual_seed(1)
    b = TaskBatch(*(torch.randn(9, n, d, generator=g, dtype=DT)
                    for n, d in ((5, 1), (5, 2), (7, 1), (7, 2))))
    return MAML(model, 0.1, 2), b


def _worker(rank: int, world: int, port: int, out: str, wait: str = "poll") -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), SCIMETA_DIST_WAIT=wait)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        learner, b = setup()
        params = learner.init_params()
        part = shard(b, rank, world)
        loss, grads = learner.meta_gradient(params, part)
        # rank 1 alone asks to stop: every rank must learn it from the same message
        total, stop = allreduce_mean(grads, part.num_tasks, float(loss), rank == 1)
        if rank == 0:
            torch.save({**{k: v for k, v in grads.items() if v is not None},
                        "_loss": torch.tensor(total, dtype=DT),
                        "_stop": torch.tensor(stop)}, out)
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.distributed
@pytest.mark.parametrize("wait", ["poll", "block"])
def test_two_ranks_equal_one_process(tmp_path, wait):
    """Either way of waiting for the all-reduce (SCIMETA_DIST_WAIT) gives the
    one-process meta-gradient."""
    out = str(tmp_path / "grads.pt")
    mp.spawn(_worker, args=(2, free_port(), out, wait), nprocs=2, join=True)
    learner, b = setup()
    _, want = learner.meta_gradient(learner.init_params(), b)
    got = torch.load(out, weights_only=True)
    assert bool(got.pop("_stop"))
    full = learner.meta_loss(learner.init_params(), b)
    assert torch.allclose(got.pop("_loss"), full.detach(), rtol=1e-12, atol=0)
    for k, w in want.items():
        assert torch.allclose(got[k], w, rtol=1e-12, atol=1e-15), k


def test_shard_sizes_and_errors():
    _, b = setup()
    assert [shard(b, r, 2).num_tasks for r in range(2)] == [4, 5]
    assert sum(shard(b, r, 4).num_tasks for r in range(4)) == 9
    with pytest.raises(ConfigError, match="rank=2"):
        shard(b, 2, 2)
    with pytest.raises(ConfigError, match="cannot be split across 10 ranks"):
        shard(b, 0, 10)


# ---- distributed meta-training: `scimeta train` under torchrun ----------------------

TRAIN_TOML = """
[data]
train = "{store}"
[model]
hidden = [8]
[meta]
inner_lr = 0.05
inner_steps = 2
meta_batch = 7
baselines = []
[optim]
lr = 0.01
iterations = 20
[run]
seed = 3
dtype = "float64"
device = "cpu"
checkpoint_every = 5
log_every = 4
"""

# rank 1 raises at its 4th meta-step; rank 0 must then end with a clear message
FAILING_RANK = """
import os, sys
import scimeta.train.loop as loop
from scimeta.cli import main
real, calls = loop.meta_step, []
def failing(*args, **kwargs):
    calls.append(1)
    if os.environ["RANK"] == "1" and len(calls) == 4:
        raise RuntimeError("injected failure on rank 1")
    return real(*args, **kwargs)
loop.meta_step = failing
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def train_config(tmp_path_factory):
    from scimeta.data import GenerationConfig, generate

    d = tmp_path_factory.mktemp("dist-train")
    generate(GenerationConfig("oscillator", "unforced-train", tasks=30, seed=0, support=6,
                              query=12), d / "train.h5")
    cfg = d / "run.toml"
    cfg.write_text(TRAIN_TOML.format(store=d / "train.h5"))
    return cfg


def _scimeta() -> str:
    return str(Path(sys.executable).with_name("scimeta"))


def _torchrun(nproc: int, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("torchrun")
    cmd = [str(exe), "--nproc-per-node", str(nproc), "--master-addr", "127.0.0.1",
           "--master-port", str(free_port()), "--no-python", _scimeta(), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SCIMETA_DIST_TIMEOUT": "60"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def _params(run_dir: Path) -> dict:
    return torch.load(run_dir / "inits" / "maml.pt", weights_only=True)["params"]


def _one_and_two_ranks(cfg: Path, tmp_path: Path, init: str = "maml"
                       ) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """Train ``cfg`` in one process and on two ranks; assert the two ``init`` files agree
    to 1e-6 relative (each tensor) and return both run folders and the torchrun result."""
    one, two = tmp_path / "one", tmp_path / "two"
    r1 = subprocess.run([_scimeta(), "train", str(cfg), "--run-dir", str(one)],
                        capture_output=True, text=True, timeout=240,
                        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r1.returncode == 0, r1.stderr
    r2 = _torchrun(2, "train", str(cfg), "--run-dir", str(two))
    assert r2.returncode == 0, r2.stderr
    a, b = (torch.load(d / "inits" / f"{init}.pt", weights_only=True)["params"]
            for d in (one, two))
    for k in a:
        rel = float((a[k] - b[k]).norm() / a[k].norm().clamp_min(1e-300))
        assert rel <= 1e-6, (k, rel)
    return one, two, r2


@pytest.mark.distributed
def test_train_one_vs_two_ranks_and_rank_zero_writes(train_config, tmp_path):
    one, two, r2 = _one_and_two_ranks(train_config, tmp_path)
    # rank 0 alone wrote: one header and one row per logged iteration
    rows = (two / "metrics.csv").read_text().splitlines()
    assert rows == (one / "metrics.csv").read_text().splitlines()[:1] + rows[1:]
    assert sum("train_loss" in r for r in rows) == 5
    assert sorted(p.name for p in (two / "inits").iterdir()) == ["maml.pt"]
    assert r2.stdout.count("trained") == 2  # each rank reports; only rank 0 wrote files


@pytest.mark.distributed
def test_failure_on_one_rank_ends_both_with_a_message(train_config, tmp_path):
    script = tmp_path / "failing.py"
    script.write_text(FAILING_RANK)
    port = str(free_port())
    procs = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "OMP_NUM_THREADS": "1",
               "SCIMETA_DIST_TIMEOUT": "30"}
        procs.append(subprocess.Popen(
            [sys.executable, str(script), "train", str(train_config), "--run-dir",
             str(tmp_path / "run")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True))
    t0 = time.monotonic()
    outs = [p.communicate(timeout=150) for p in procs]
    assert time.monotonic() - t0 < 150
    assert all(p.returncode != 0 for p in procs)
    assert "injected failure on rank 1" in outs[1][1]
    assert "rank 0 of 2: a collective operation failed" in outs[0][1], outs[0][1]


# ---- launcher environments (pure functions, default run) ----------------------------

@pytest.mark.parametrize("text, hosts", [
    ("node01", ["node01"]),
    ("node[01-03,07]", ["node01", "node02", "node03", "node07"]),
    ("a1,b[2-3]", ["a1", "b2", "b3"]),
    ("gpu[9-11]", ["gpu9", "gpu10", "gpu11"]),
    ("n[008-010]", ["n008", "n009", "n010"]),
    ("r[1-2]n[01-02]", ["r1n01", "r1n02", "r2n01", "r2n02"]),
    ("c[1,3],d-ib[0-1].cluster", ["c1", "c3", "d-ib0.cluster", "d-ib1.cluster"]),
    ("x[5]", ["x5"]),
])
def test_expand_hostlist(text, hosts):
    assert expand_hostlist(text) == hosts
    assert first_host(text) == hosts[0]


@pytest.mark.parametrize("text, match", [
    ("node[01-03", "unmatched '\\['"), ("node01]", "unmatched '\\]'"),
    ("n[3-1]", "runs backwards"), ("n[a-b]", "not N or N-M"), ("", "names no host"),
])
def test_expand_hostlist_errors(text, match):
    with pytest.raises(ConfigError, match=match):
        expand_hostlist(text)


def test_detect_torchrun_slurm_and_single():
    assert detect({}) == DistEnv()
    assert not detect({}).distributed
    tr = detect({"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "h0",
                 "MASTER_PORT": "1234", "SLURM_PROCID": "3", "SLURM_STEP_ID": "0"})
    assert tr == DistEnv(1, 4, 1, "h0", 1234, "torchrun")  # torchrun wins inside srun
    slurm = {"SLURM_PROCID": "5", "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "8",
             "SLURM_NTASKS": "16", "SLURM_LOCALID": "1", "SLURM_JOB_ID": "123456",
             "SLURM_STEP_NODELIST": "gpu[07-10]", "SLURM_NODELIST": "gpu[01-10]"}
    e = detect(slurm)
    assert (e.rank, e.world_size, e.local_rank, e.master_addr, e.launcher) == \
        (5, 8, 1, "gpu07", "slurm")
    assert e.master_port == 29500 + 123456 % 10000 and not e.is_main
    assert detect({**slurm, "MASTER_ADDR": "head", "MASTER_PORT": "4000"}).master_addr == "head"
    fallback = {k: v for k, v in slurm.items() if k not in ("SLURM_STEP_NUM_TASKS",
                                                             "SLURM_STEP_NODELIST")}
    assert detect({**fallback, "SLURM_NTASKS": "16(x1)"}).world_size == 16
    assert detect({**fallback, "SLURM_NTASKS": "16"}).master_addr == "gpu01"
    # the batch script itself (no job step) and one-task steps run single-process
    assert detect({k: v for k, v in slurm.items() if k != "SLURM_STEP_ID"}) == DistEnv()
    assert detect({**slurm, "SLURM_STEP_NUM_TASKS": "1"}) == DistEnv()


def test_detect_errors_name_the_variable():
    with pytest.raises(ConfigError, match="RANK='x' is not an integer"):
        detect({"RANK": "x", "WORLD_SIZE": "2"})
    with pytest.raises(ConfigError, match="rank 2 with world size 2"):
        detect({"RANK": "2", "WORLD_SIZE": "2"})
    with pytest.raises(ConfigError, match="SLURM_JOB_NODELIST"):
        detect({"SLURM_PROCID": "0", "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "2"})
    with pytest.raises(ConfigError, match="SCIMETA_DIST_TIMEOUT='0'"):
        timeout_seconds({"SCIMETA_DIST_TIMEOUT": "0"})
    assert timeout_seconds({"SCIMETA_DIST_TIMEOUT": "12.5"}) == 12.5
    assert timeout_seconds({}) == DEFAULT_TIMEOUT
    with pytest.raises(ConfigError, match=r"SCIMETA_DIST_WAIT='spin'.*'poll' or 'block'"):
        wait_mode({"SCIMETA_DIST_WAIT": "spin"})
    assert wait_mode({}) == "poll" and wait_mode({"SCIMETA_DIST_WAIT": "block"}) == "block"


def test_bad_wait_mode_stops_before_the_process_group(monkeypatch):
    """Refused at start-up, not at the first all-reduce: no group is ever joined (a
    group at this unused port would otherwise wait for its second rank)."""
    import torch.distributed as dist

    monkeypatch.setenv("SCIMETA_DIST_WAIT", "spin")
    env = DistEnv(rank=0, world_size=2, master_port=free_port(), launcher="torchrun")
    with pytest.raises(ConfigError, match="SCIMETA_DIST_WAIT='spin'"):
        with process_group(torch.device("cpu"), env, timeout=5.0):
            pass
    assert not dist.is_initialized()


SLOW_STEPS = """
import sys, time
import scimeta.train.loop as loop
from scimeta.cli import main
real = loop.meta_step
def slow(*args, **kwargs):
    time.sleep(0.25)
    return real(*args, **kwargs)
loop.meta_step = slow
sys.exit(main(sys.argv[1:]))
"""


def _ranks(script: Path, args: list[str], tmp_path: Path) -> list[subprocess.Popen]:
    port, procs = str(free_port()), []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "OMP_NUM_THREADS": "1",
               "SCIMETA_DIST_TIMEOUT": "60"}
        procs.append(subprocess.Popen([sys.executable, str(script), *args], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    return procs


@pytest.mark.distributed
def test_signal_to_one_rank_stops_both_and_resume_matches(train_config, tmp_path):
    one = tmp_path / "one"
    r1 = subprocess.run([_scimeta(), "train", str(train_config), "--run-dir", str(one)],
                        capture_output=True, text=True, timeout=240)
    assert r1.returncode == 0, r1.stderr
    script = tmp_path / "slow.py"
    script.write_text(SLOW_STEPS)
    run = tmp_path / "two"
    args = ["train", str(train_config), "--run-dir", str(run), "--resume"]
    procs = _ranks(script, args, tmp_path)
    deadline = time.monotonic() + 120
    while not (run / "metrics.csv").exists():  # rank 0 logged iteration 4
        assert time.monotonic() < deadline and procs[0].poll() is None
        time.sleep(0.05)
    procs[1].send_signal(signal.SIGUSR1)  # only rank 1 is signalled
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [75, 75], outs  # EXIT_REQUEUE on every rank
    assert all("stopped by" in o for o, _ in outs), outs
    ck = torch.load(run / "checkpoint.pt", weights_only=False)
    assert 4 <= ck["iteration"] < 20
    assert not (run / "inits").exists() or not any((run / "inits").iterdir())
    procs = _ranks(Path(_scimeta()), args, tmp_path)  # resume at full speed
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    a, b = _params(one), _params(run)
    for k in a:
        assert float((a[k] - b[k]).norm() / a[k].norm()) <= 1e-6, k
    assert not (run / "checkpoint.pt").exists()


DECODER_TOML = """
[data]
train = "{store}"
[model]
hidden = [8]
normalize = "both"
periodic_modes = 2
[meta]
algorithm = "decoder"
meta_batch = 4
baselines = []
[optim]
lr = 0.01
iterations = 6
[run]
seed = 3
dtype = "float64"
device = "cpu"
checkpoint_every = 3
log_every = 3
"""


@pytest.mark.distributed
def test_decoder_two_ranks_draw_the_same_field_points_as_one(tmp_path):
    """The decoder's whole-field points come from the shared generator, so two ranks,
    each reading its share of every meta-batch, train the init one process trains."""
    from scimeta.data import GenerationConfig, generate

    generate(GenerationConfig("burgers", "train", tasks=8, seed=0, support=6, query=10),
             tmp_path / "train.h5")
    cfg = tmp_path / "run.toml"
    cfg.write_text(DECODER_TOML.format(store=tmp_path / "train.h5"))
    _one_and_two_ranks(cfg, tmp_path, "decoder")
