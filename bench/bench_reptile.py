"""Reptile's meta-step: hand-batched path against the torch.func path, in one run.

    OMP_NUM_THREADS=1 python bench/bench_reptile.py [--repeats 60] [--threads 1]

Finn-style sinusoid shapes: MLP 1-40-40-1 ReLU, meta-batch 25, K = 10 support and
Q = 100 query points, 5 inner SGD steps of 0.01, float32. Rows:

- ``torch.func, two adaptations``: the torch.func path computing the monitoring loss
  (``meta_loss``) and the pseudo-gradient (``meta_grad``) separately — Reptile's step
  before the hand-batched path served it (the baseline of the ratios);
- ``torch.func, one adaptation``: ``meta_gradient`` on the torch.func path;
- ``hand-batched``: ``meta_gradient`` on the default path.

The pseudo-gradients of the paths agree (printed: the largest relative difference).
Prints ms per meta-step (best of three blocks of ``--repeats``) and the speed-up.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch import nn

from scimeta.meta import Reptile, TaskBatch


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(1, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU(),
                         nn.Linear(40, 1))


def _best_ms(fn: Callable[[], object], repeats: int) -> float:
    for _ in range(5):
        fn()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        best = min(best, (time.perf_counter() - t0) / repeats)
    return 1e3 * best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=60)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    b = TaskBatch(torch.rand(25, 10, 1, generator=g) * 10 - 5, torch.randn(25, 10, 1, generator=g),
                  torch.rand(25, 100, 1, generator=g) * 10 - 5,
                  torch.randn(25, 100, 1, generator=g))
    hand, func = Reptile(_model(), 0.01, 5), Reptile(_model(), 0.01, 5, fast=False)
    p = hand.init_params()
    _, g_hand = hand.meta_gradient(p, b)
    g_func = func.meta_grad(p, b)
    diff = max(float((g_hand[n] - g_func[n]).norm() / g_func[n].norm()) for n in hand.names)
    rows = [("torch.func, two adaptations",
             _best_ms(lambda: (func.meta_loss(p, b), func.meta_grad(p, b)), args.repeats)),
            ("torch.func, one adaptation",
             _best_ms(lambda: func.meta_gradient(p, b), args.repeats)),
            ("hand-batched", _best_ms(lambda: hand.meta_gradient(p, b), args.repeats))]
    base = rows[0][1]
    print(f"Reptile meta-step, 25 tasks x 5 inner steps, {args.threads} thread(s); "
          f"pseudo-gradients agree to {diff:.1e} relative")
    print(f"{'path':<30}{'ms/step':>9}{'speed-up':>10}")
    for name, ms in rows:
        print(f"{name:<30}{ms:>9.2f}{base / ms:>9.1f}x")


if __name__ == "__main__":
    main()
