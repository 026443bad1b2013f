"""Scaling of distributed meta-training (1 rank vs N gloo ranks) and sharded generation.

    OMP_NUM_THREADS=1 python bench/bench_scaling.py [--ranks 2] [--meta-batch 100]

Trains the unforced oscillator (MLP 1-64-64-2 tanh, second-order MAML, 5 inner steps,
K = 10, Q = 100) with one process and with ``--ranks`` processes under ``torchrun``
(each rank one thread), each twice: ``--short`` and ``--long`` meta-iterations, so the
start-up (imports, store, process group) cancels in the difference. Prints
meta-iterations/s, the speed-up and the scaling efficiency = speed-up / ranks, for a
meta-batch split across the ranks. Then generation: ``--gen-tasks`` tasks of
``--gen-family`` in one process vs ``--ranks`` concurrent ``scimeta generate --shard
I/N`` processes followed by ``scimeta merge`` (tasks/s, wall time including the merge).
Run it on an idle machine: other load on the cores makes the figures meaningless.
"""

from __future__ import annotations

import argparse
import os
import shutil
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
log_every = 100000
"""


def timed(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--meta-batch", type=int, default=100)
    ap.add_argument("--short", type=int, default=10)
    ap.add_argument("--long", type=int, default=110)
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
        speed = {}
        for ranks in (1, args.ranks):
            secs = []
            for iters in (args.short, args.long):
                cfg = d / f"r{ranks}-{iters}.toml"
                cfg.write_text(CONFIG.format(store=d / "train.h5", batch=args.meta_batch,
                                             iterations=iters))
                run = ["--run-dir", str(d / f"run-{ranks}-{iters}")]
                cmd = ([scimeta, "train", str(cfg), *run] if ranks == 1 else
                       [torchrun, "--standalone", f"--nproc-per-node={ranks}", "--no-python",
                        scimeta, "train", str(cfg), *run])
                secs.append(timed(cmd, env))
            speed[ranks] = (args.long - args.short) / (secs[1] - secs[0])
        gen = generation(d, scimeta, env, args)
    s1, sn = speed[1], speed[args.ranks]
    print(f"meta-batch {args.meta_batch}, iterations {args.short} and {args.long} "
          "(difference), oscillator, MLP 1-64-64-2 tanh, second-order MAML")
    print("| ranks (gloo) | meta-iterations/s | speed-up | scaling efficiency |")
    print("|---|---|---|---|")
    print(f"| 1 | {s1:.2f} | 1.00 | 100 % |")
    print(f"| {args.ranks} | {sn:.2f} | {sn / s1:.2f} | {100 * sn / s1 / args.ranks:.0f} % |")
    print(f"\ngeneration: {args.gen_tasks} tasks of {args.gen_family} (regime train)")
    print("| processes | wall s (incl. merge) | tasks/s | speed-up |")
    print("|---|---|---|---|")
    for k, secs in gen.items():
        print(f"| {k} | {secs:.1f} | {args.gen_tasks / secs:.1f} | {gen[1] / secs:.2f} |")


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
