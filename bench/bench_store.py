"""Task-store throughput: generation with 1 vs 2 workers; size and read rate per filter.

    python bench/bench_store.py [--tasks 400] [--family oscillator] [--batches 200]

Prints two tables; the ratios compare against baselines measured in the same run:
generation against 1 worker, and each store filter (``--compression`` gzip, lzf,
none) against gzip, the default: file size, bytes of ``u`` on disk, and the rate of
reading 25-task meta-batches lazily from disk (in memory for reference).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from scimeta.data import GenerationConfig, TaskReader, generate

FILTERS = ("gzip", "lzf", "none")


def _time(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _u_bytes(path: Path) -> int:
    with h5py.File(path, "r") as f:
        return int(f["u"].id.get_storage_size())


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
    n = args.batches
    with tempfile.TemporaryDirectory() as tmp:
        gen = []
        t1 = _time(lambda: generate(cfg, Path(tmp) / "w1.h5", workers=1, overwrite=True))
        t2 = _time(lambda: generate(cfg, Path(tmp) / "w2.h5", workers=2, overwrite=True))
        gen.append(("generate, 1 worker", args.tasks / t1, 1.0))
        gen.append(("generate, 2 workers", args.tasks / t2, t1 / t2))

        paths = {c: Path(tmp) / f"{c}.h5" for c in FILTERS}
        t_gen = {c: _time(lambda c=c: generate(dataclasses.replace(cfg, compression=c),
                                               paths[c], overwrite=True)) for c in FILTERS}
        readers = {c: TaskReader(paths[c], n_collocation=0) for c in FILTERS}
        readers["memory"] = TaskReader(paths["gzip"], in_memory=True, n_collocation=0)
        t_read = dict.fromkeys(readers, float("inf"))
        for _ in range(3):  # interleaved rounds, best of each: the same load for every filter
            for c, reader in readers.items():
                rng = np.random.default_rng(0)
                t_read[c] = min(t_read[c], _time(
                    lambda reader=reader, rng=rng: [reader.sample(25, rng) for _ in range(n)]))
        rows = [(c, paths[c].stat().st_size, _u_bytes(paths[c]), args.tasks / t_gen[c],
                 n / t_read[c]) for c in FILTERS]
        for reader in readers.values():
            reader.close()
        tm = t_read["memory"]

    print(f"family={args.family} regime={args.regime} tasks={args.tasks} K=10 Q=100")
    print(f"{'measurement':<28}{'tasks/s':>10}{'vs 1 worker':>13}")
    for name, rate, ratio in gen:
        print(f"{name:<28}{rate:>10.1f}{ratio:>12.2f}x")
    print()
    base = rows[0]
    print(f"{'filter':<8}{'file MB':>9}{'x gzip':>8}{'u MB':>8}{'x gzip':>8}{'gen tasks/s':>13}"
          f"{'read batches/s':>16}{'x gzip':>8}")
    for c, size, ub, gr, rr in rows:
        print(f"{c:<8}{size / 1e6:>9.3f}{size / base[1]:>7.2f}x{ub / 1e6:>8.3f}"
              f"{ub / base[2]:>7.2f}x{gr:>13.1f}{rr:>16.1f}{rr / base[4]:>7.2f}x")
    print(f"{'memory':<8}{'':>9}{'':>8}{'':>8}{'':>8}{'':>13}{n / tm:>16.1f}"
          f"{n / tm / base[4]:>7.2f}x")


if __name__ == "__main__":
    main()
