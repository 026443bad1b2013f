"""Share of a meta-training step spent loading data (target < 10 %).

    python bench/bench_train.py [--iters 200] [--threads 2]

Times the two halves of the training loop of ``scimeta.train`` on the unforced
oscillator (MLP 1-64-64-2 tanh, meta-batch 25, K = 10, Q = 100, 5 inner steps,
second order): drawing a TaskBatch from the store (in memory and lazily from disk)
and the meta-step (meta-loss, backward, Adam). Prints a table with the data share.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from scimeta.data import GenerationConfig, TaskReader, generate
from scimeta.meta import MAML
from scimeta.nn import CoordinateMLP


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.h5"
        generate(GenerationConfig("oscillator", "unforced-train", tasks=400, seed=0,
                                  support=10, query=100), path)
        print(f"{'reader':<10}{'load ms/it':>12}{'step ms/it':>12}{'data share':>12}")
        for mode in ("memory", "disk"):
            reader = TaskReader(path, in_memory=mode == "memory")
            torch.manual_seed(0)
            maml = MAML(CoordinateMLP(1, 2, (64, 64)), inner_lr=0.1, inner_steps=5)
            params = maml.init_params()
            opt = torch.optim.Adam(params.values(), lr=1e-3)
            rng = np.random.default_rng(0)
            t_load = t_step = 0.0
            for it in range(args.iters + 5):
                t0 = time.perf_counter()
                batch = reader.sample(25, rng)
                t1 = time.perf_counter()
                opt.zero_grad()
                maml.meta_loss(params, batch).backward()
                opt.step()
                t2 = time.perf_counter()
                if it >= 5:  # warm-up excluded
                    t_load += t1 - t0
                    t_step += t2 - t1
            n = args.iters
            share = t_load / (t_load + t_step)
            print(f"{mode:<10}{1e3 * t_load / n:>12.2f}{1e3 * t_step / n:>12.2f}"
                  f"{100 * share:>11.1f}%")


if __name__ == "__main__":
    main()
