"""Physics-informed meta-gradient cost relative to the data-only one (target <= 3x).

    python bench/bench_physics.py [--repeats 5] [--threads 2]

Second-order MAML, meta-batch 25, K = 10 support, Q = 50 query, C = 32 collocation
points, 5 inner SGD steps, float32, MLP d_in-40-40-d_out tanh, physics weight 0.01 in
the inner loss. For the oscillator (ODE, input t, dy/dt) and Burgers (inputs (t, x),
u_x and u_xx) it times one meta-loss + backward on three paths, in one run:

- data only, hand-batched (the baseline the ratios divide by);
- physics, hand-batched: Taylor-mode input derivatives batched over tasks
  (``scimeta.meta._taylor``), inner gradient by autograd;
- physics, ``torch.func``: nested ``jvp`` per collocation point under ``vmap``.

Prints ms per meta-iteration (best of ``--repeats`` blocks) and the ratios.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from scimeta import problems
from scimeta.meta import MAML, PhysicsLoss, TaskBatch

B, K, Q, C, STEPS, WIDTH = 25, 10, 50, 32, 5, 40


def batch(din: int, dout: int, n_params: int) -> TaskBatch:
    g = torch.Generator().manual_seed(0)

    def r(n: int, d: int) -> torch.Tensor:
        return torch.rand(B, n, d, generator=g)

    return TaskBatch(r(K, din), torch.randn(B, K, dout, generator=g), r(Q, din),
                     torch.randn(B, Q, dout, generator=g), r(C, din),
                     torch.rand(B, n_params, generator=g) + 0.3)


def time_path(family: str, din: int, dout: int, physics: bool, fast: bool,
              repeats: int) -> float:
    fam = problems.get(family)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(din, WIDTH), nn.Tanh(), nn.Linear(WIDTH, WIDTH),
                          nn.Tanh(), nn.Linear(WIDTH, dout))
    loss = PhysicsLoss(fam, 0.01, "inner") if physics else None
    learner = MAML(model, 0.01, STEPS, physics=loss, fast=fast)
    b = batch(din, dout, len(fam.params))
    p = learner.init_params()
    for _ in range(2):
        learner.meta_loss(p, b).backward()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(5):
            learner.meta_loss(p, b).backward()
        best = min(best, (time.perf_counter() - t0) / 5)
    return best * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{'family':<12}{'data ms':>9}{'phys fast ms':>14}{'ratio':>7}"
          f"{'phys func ms':>14}{'ratio':>7}{'fast/func':>11}")
    for family, din, dout in (("oscillator", 1, 2), ("burgers", 2, 1)):
        data = time_path(family, din, dout, False, True, args.repeats)
        fast = time_path(family, din, dout, True, True, args.repeats)
        func = time_path(family, din, dout, True, False, args.repeats)
        print(f"{family:<12}{data:>9.1f}{fast:>14.1f}{fast / data:>7.2f}"
              f"{func:>14.1f}{func / data:>7.2f}{func / fast:>10.2f}x")


if __name__ == "__main__":
    main()
