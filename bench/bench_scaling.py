"""Scaling of distributed meta-training (1 rank vs N gloo ranks) and sharded generation.

    OMP_NUM_THREADS=1 python bench/bench_scaling.py [--ranks 2] [--meta-batch 100]

Trains the unforced oscillator (MLP 1-64-64-2 tanh, second-order MAML, 5 inner steps,
K = 10, Q = 100) with one process and with ``--ranks`` processes under ``torchrun``
(each rank one thread), alternating, ``--repeats`` times each; the multi-rank runs
once per ``--wait`` mode (``SCIMETA_DIST_WAIT``: ranks poll the pending all-reduce,
or block in it), so the modes see the same machine. The rate is read from
the run's own metrics.csv (rank 0 logs the wall seconds every ``--log-every``
iterations): meta-iterations per second between the first logged row (warm-up and
start-up excluded) and the last, so interpreter start-up, store loading and the
process group's rendezvous do not enter it. Prints each pair's efficiency =
speed-up / ranks and their median, for a meta-batch split across the ranks, and a
ceiling without communication: ``--ranks`` independent single-process runs of
B / ranks tasks each, side by side (what the cores give when nothing is exchanged;
on a VM whose cores share caches or a host, this is below 100 %), and the all-reduce
latency of one step's message (``_allreduce_latency.py``). Then generation:
``--gen-tasks`` tasks of
``--gen-family`` in one process vs ``--ranks`` concurrent ``scimeta generate --shard
I/N`` processes followed by ``scimeta merge`` (tasks/s, wall time including the merge).
Run it on an idle machine: other load on the cores makes the figures meaningless.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = """
[data]
train = "{store}"
in_memory = true

[model]
hidden = [64, 64]
activation = "tanh"

[meta]
algorithm = "maml"
inner_lr = 0.1
inner_steps = 5
meta_batch = {batch}
baselines = []

[optim]
lr = 0.001
iterations = {iterations}

[run]
seed = 0
checkpoint_every = 100000
validate_every = 100000
log_every = {log_every}
"""


def timed(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--meta-batch", type=int, default=100)
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--wait", default="poll,block",
                    help="SCIMETA_DIST_WAIT modes of the multi-rank runs, alternated in "
                         "each repeat (comma-separated: poll, block)")
    ap.add_argument("--gen-family", default="lotka_volterra")
    ap.add_argument("--gen-tasks", type=int, default=200)
    args = ap.parse_args()
    from scimeta.data import GenerationConfig, generate

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    scimeta = shutil.which("scimeta") or sys.exit("scimeta is not on PATH")
    torchrun = shutil.which("torchrun") or sys.exit("torchrun is not on PATH")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        generate(GenerationConfig("oscillator", "unforced-train", tasks=200, seed=0),
                 d / "train.h5")
        modes = args.wait.split(",")
        speed: dict[str, list[float]] = {"1": [], "free": [], **{m: [] for m in modes}}
        for rep in range(args.repeats):
            speed["free"].append(side_by_side(d, scimeta, env, args, rep))
            cfg = d / "run.toml"
            cfg.write_text(CONFIG.format(store=d / "train.h5", batch=args.meta_batch,
                                         iterations=args.iterations,
                                         log_every=args.log_every))
            for key in ("1", *modes):
                run = d / f"run-{key}-{rep}"
                cmd = ([scimeta, "train", str(cfg), "--run-dir", str(run)] if key == "1"
                       else [torchrun, "--standalone", f"--nproc-per-node={args.ranks}",
                             "--no-python", scimeta, "train", str(cfg), "--run-dir", str(run)])
                run_env = env if key == "1" else {**env, "SCIMETA_DIST_WAIT": key}
                subprocess.run(cmd, check=True, env=run_env, stdout=subprocess.DEVNULL)
                speed[key].append(steady_rate(run / "metrics.csv"))
        gen = generation(d, scimeta, env, args)
        latency = subprocess.run(
            [torchrun, "--standalone", f"--nproc-per-node={args.ranks}",
             str(Path(__file__).with_name("_allreduce_latency.py"))],
            check=True, env=env, capture_output=True, text=True).stdout
    print(f"meta-batch {args.meta_batch}, {args.iterations} iterations (rate after the "
          f"first {args.log_every}), oscillator, MLP 1-64-64-2 tanh, second-order MAML")
    head = " | ".join(f"{args.ranks} ranks, {m}: it/s, efficiency" for m in modes)
    print(f"| run | 1 rank it/s | {head} | ceiling: {args.ranks} independent runs of "
          f"B/{args.ranks} |")
    print("|---" * (3 + len(modes)) + "|")
    eff: dict[str, list[float]] = {m: [] for m in modes}
    ceil = []
    for rep in range(args.repeats):
        s1 = speed["1"][rep]
        cells = []
        for m in modes:
            eff[m].append(speed[m][rep] / s1 / args.ranks)
            cells.append(f"{speed[m][rep]:.2f}, {100 * eff[m][-1]:.0f} %")
        ceil.append(speed["free"][rep] / s1 / args.ranks)
        print(f"| {rep + 1} | {s1:.2f} | {' | '.join(cells)} | {100 * ceil[-1]:.0f} % |")
    med = " | ".join(f"{statistics.median(speed[m]):.2f}, "
                     f"**{100 * statistics.median(eff[m]):.0f} %**" for m in modes)
    print(f"| median | {statistics.median(speed['1']):.2f} | {med} | "
          f"{100 * statistics.median(ceil):.0f} % |")
    print(f"\n{latency.strip()}")
    print(f"\ngeneration: {args.gen_tasks} tasks of {args.gen_family} (regime train)")
    print("| processes | wall s (incl. merge) | tasks/s | speed-up |")
    print("|---|---|---|---|")
    for k, secs in gen.items():
        print(f"| {k} | {secs:.1f} | {args.gen_tasks / secs:.1f} | {gen[1] / secs:.2f} |")


def side_by_side(d: Path, scimeta: str, env: dict, args: argparse.Namespace,
                 rep: int) -> float:
    """Meta-iterations/s of ``args.ranks`` independent runs of B / ranks tasks each,
    started together (the slowest one's rate: a synchronous run waits for it)."""
    cfg = d / "free.toml"
    cfg.write_text(CONFIG.format(store=d / "train.h5", batch=args.meta_batch // args.ranks,
                                 iterations=args.iterations, log_every=args.log_every))
    runs = [d / f"free-{rep}-{i}" for i in range(args.ranks)]
    procs = [subprocess.Popen([scimeta, "train", str(cfg), "--run-dir", str(r)], env=env,
                              stdout=subprocess.DEVNULL) for r in runs]
    if any(p.wait() for p in procs):
        sys.exit("an independent run failed")
    return min(steady_rate(r / "metrics.csv") for r in runs)


def steady_rate(metrics: Path) -> float:
    """Meta-iterations/s between the first and the last train_loss row of a run."""
    with metrics.open() as f:
        rows = [(int(r["iteration"]), float(r["seconds"])) for r in csv.DictReader(f)
                if r["metric"] == "train_loss"]
    (i0, s0), (i1, s1) = rows[0], rows[-1]
    return (i1 - i0) / (s1 - s0)


def generation(d: Path, scimeta: str, env: dict, args: argparse.Namespace) -> dict[int, float]:
    """Wall seconds to generate the store with 1 process and with ``args.ranks`` shards."""
    base = [scimeta, "generate", args.gen_family, "--regime", "train", "--tasks",
            str(args.gen_tasks), "--seed", "0"]
    out = {1: timed([*base, "--out", str(d / "g1.h5")], env)}
    t0 = time.perf_counter()
    procs = [subprocess.Popen([*base, "--out", str(d / "gn.h5"), "--shard",
                               f"{i}/{args.ranks}"], env=env, stdout=subprocess.DEVNULL)
             for i in range(args.ranks)]
    if any(p.wait() for p in procs):
        sys.exit("a shard failed")
    shards = sorted(str(p) for p in d.glob("gn.shard-*.h5"))
    subprocess.run([scimeta, "merge", "--out", str(d / "gn.h5"), *shards], check=True,
                   env=env, stdout=subprocess.DEVNULL)
    out[args.ranks] = time.perf_counter() - t0
    return out


if __name__ == "__main__":
    main()
