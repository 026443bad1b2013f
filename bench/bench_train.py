"""Share of a meta-training step spent loading data (target < 10 %), per store filter.

    python bench/bench_train.py [--iters 200] [--threads 2] [--rounds 3]

Times the two halves of the training loop of ``scimeta.train`` on the unforced
oscillator (MLP 1-64-64-2 tanh, meta-batch 25, K = 10, Q = 100, 5 inner steps,
second order): drawing a TaskBatch from the store (in memory, and lazily from disk for
stores written with ``--compression`` gzip, lzf and none) and the meta-step
(meta-loss, backward, Adam). The readers take turns, one iteration each, for
``--rounds`` rounds, so a change of machine load hits every one alike; the table gives
the medians over rounds and the load time of each lazy reader against gzip's.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from scimeta.data import GenerationConfig, TaskReader, generate
from scimeta.meta import MAML
from scimeta.nn import CoordinateMLP

MODES = ("memory", "gzip", "lzf", "none")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = GenerationConfig("oscillator", "unforced-train", tasks=400, seed=0, support=10,
                           query=100)
    with tempfile.TemporaryDirectory() as tmp:
        readers = {}
        for c in MODES[1:]:
            path = Path(tmp) / f"{c}.h5"
            generate(dataclasses.replace(cfg, compression=c), path)
            readers[c] = TaskReader(path, in_memory=False)
        readers["memory"] = TaskReader(Path(tmp) / "gzip.h5", in_memory=True)
        torch.manual_seed(0)
        maml = MAML(CoordinateMLP(1, 2, (64, 64)), inner_lr=0.1, inner_steps=5)
        params = maml.init_params()
        opt = torch.optim.Adam(params.values(), lr=1e-3)
        load: dict[str, list[float]] = {m: [] for m in MODES}
        step: dict[str, list[float]] = {m: [] for m in MODES}
        for _ in range(args.rounds):
            t_load = dict.fromkeys(MODES, 0.0)
            t_step = dict.fromkeys(MODES, 0.0)
            rngs = {m: np.random.default_rng(0) for m in MODES}
            for it in range(args.iters + 5):
                for m in MODES:  # interleaved: the same load for every reader
                    t0 = time.perf_counter()
                    batch = readers[m].sample(25, rngs[m])
                    t1 = time.perf_counter()
                    opt.zero_grad()
                    maml.meta_loss(params, batch).backward()
                    opt.step()
                    t2 = time.perf_counter()
                    if it >= 5:  # warm-up excluded
                        t_load[m] += t1 - t0
                        t_step[m] += t2 - t1
            for m in MODES:
                load[m].append(t_load[m] / args.iters)
                step[m].append(t_step[m] / args.iters)
        for r in readers.values():
            r.close()
    med = {m: (float(np.median(load[m])), float(np.median(step[m]))) for m in MODES}
    print(f"{'reader':<14}{'load ms/it':>12}{'step ms/it':>12}{'data share':>12}"
          f"{'load x gzip':>13}")
    for m in MODES:
        lo, st = med[m]
        name = "memory" if m == "memory" else f"disk, {m}"
        print(f"{name:<14}{1e3 * lo:>12.2f}{1e3 * st:>12.2f}{100 * lo / (lo + st):>11.1f}%"
              f"{lo / med['gzip'][0]:>12.2f}x")


if __name__ == "__main__":
    main()
