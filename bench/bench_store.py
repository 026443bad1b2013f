"""Task-store throughput: generation with 1 vs 2 workers, reading from disk vs memory.

    python bench/bench_store.py [--tasks 400] [--family oscillator]

Prints a table; the ratios compare against the baseline measured in the same run
(1 worker for generation, in-memory for reading).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from scimeta.data import GenerationConfig, TaskReader, generate


def _time(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tasks", type=int, default=400)
    ap.add_argument("--family", default="oscillator")
    ap.add_argument("--regime", default="train")
    ap.add_argument("--batches", type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = GenerationConfig(args.family, args.regime, tasks=args.tasks, seed=0, support=10,
                           query=100)
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        path = Path(tmp) / "w1.h5"
        t1 = _time(lambda: generate(cfg, path, workers=1, overwrite=True))
        t2 = _time(lambda: generate(cfg, Path(tmp) / "w2.h5", workers=2, overwrite=True))
        rows.append(("generate, 1 worker", args.tasks / t1, "tasks/s", 1.0))
        rows.append(("generate, 2 workers", args.tasks / t2, "tasks/s", t1 / t2))

        rng = np.random.default_rng(0)
        mem = TaskReader(path, in_memory=True, n_collocation=0)
        disk = TaskReader(path, n_collocation=0)
        n = args.batches
        tm = _time(lambda: [mem.sample(25, rng) for _ in range(n)], repeat=3)
        td = _time(lambda: [disk.sample(25, rng) for _ in range(n)], repeat=3)
        rows.append(("read 25 tasks K=10 Q=100, memory", n / tm, "batches/s", 1.0))
        rows.append(("read 25 tasks K=10 Q=100, disk", n / td, "batches/s", tm / td))

    print(f"family={args.family} regime={args.regime} tasks={args.tasks}")
    print(f"{'measurement':<38}{'rate':>12}  {'unit':<10}{'vs baseline':>12}")
    for name, rate, unit, ratio in rows:
        print(f"{name:<38}{rate:>12.1f}  {unit:<10}{ratio:>11.2f}x")


if __name__ == "__main__":
    main()
