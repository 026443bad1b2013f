"""Context models (CAVIA's network) on the hand-batched path against ``torch.func``.

    python bench/bench_context.py [--repeats 5] [--threads 2] [--tasks 200]

The Burgers suite's CAVIA network: ``CoordinateMLP(2, 1, hidden=(64, 64), tanh,
periodic_modes=4, context_dim=8)`` inside the run's affine maps, float32, with a
normalized run's loss (``ScaledMSE``: the MSE in units of the output spread). Times, in
one run and for both paths (``fast=True``: the context enters the first layer as a
bias and its gradient is written out, :mod:`scimeta.meta._fast`; ``fast=False``:
``vmap`` of ``torch.func``, the path every normalized run took before the hand-batched
paths recognised ``ScaledMSE``):

1. the meta-gradient (meta-loss + backward), meta-batch 25, K = 10, Q = 100, 5 inner
   SGD steps, second order: CAVIA (context adapted) and MAML (everything adapted), and
   MAML on the suite's first network (2-64-64-1 tanh, no periodic map, no context);
2. the same with the Burgers residual in the inner loss (C = 32 collocation points,
   weight 0.1);
3. the test-time step of ``scimeta evaluate``: support losses and gradients of the
   context alone for ``--tasks`` tasks at once (``MAML.support_grads``), data only and
   with the residual at 64 collocation points (what ``lbfgs+physics`` evaluates per
   step).

Prints ms per call (best of ``--repeats`` blocks of 5) and the speed-up.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from scimeta import problems
from scimeta.meta import PhysicsLoss, ScaledMSE, TaskBatch, get_learner
from scimeta.nn import CoordinateMLP, Rescaled

B, K, Q, C, STEPS = 25, 10, 100, 32, 5


def model(plain: bool = False) -> torch.nn.Module:
    """The CAVIA network, or (``plain``) the suite's first MAML network: 2-64-64-1 tanh
    without the periodic map or a context."""
    torch.manual_seed(0)
    extra = {} if plain else {"periods": [None, 2.0], "periodic_modes": 4, "context_dim": 8}
    net = CoordinateMLP(2, 1, hidden=(64, 64), activation="tanh", **extra)
    return Rescaled(net, [0.0, -1.0], [1.0, 0.998], [0.0], [0.3])


def batch(n: int, c: int) -> TaskBatch:
    g = torch.Generator().manual_seed(0)

    def pts(m: int) -> torch.Tensor:
        return torch.rand(n, m, 2, generator=g) * torch.tensor([1.0, 2.0]) - torch.tensor(
            [0.0, 1.0])

    return TaskBatch(pts(K), torch.randn(n, K, 1, generator=g), pts(Q),
                     torch.randn(n, Q, 1, generator=g), pts(c),
                     torch.rand(n, 1, generator=g) * 0.18 + 0.02)


def best_ms(fn: Callable[[], object], repeats: int) -> float:
    for _ in range(2):
        fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(5):
            fn()
        best = min(best, (time.perf_counter() - t0) / 5)
    return best * 1e3


def meta_gradient(algorithm: str, physics: bool, fast: bool, repeats: int,
                  plain: bool = False) -> float:
    loss = PhysicsLoss(problems.get("burgers"), 0.1, "inner") if physics else None
    net = model(plain)
    learner = get_learner(algorithm).build(net, inner_lr=0.1, inner_steps=STEPS,
                                           physics=loss, loss=ScaledMSE(net), fast=fast)
    assert (learner._fast is not None) == fast
    p, b = learner.init_params(), batch(B, C)
    return best_ms(lambda: learner.meta_loss(p, b).backward(), repeats)


def support_step(physics: bool, fast: bool, tasks: int, repeats: int) -> float:
    loss = PhysicsLoss(problems.get("burgers"), 0.1, "inner") if physics else None
    net = model()
    learner = get_learner("maml").build(net, inner_lr=0.1, inner_steps=1, physics=loss,
                                        loss=ScaledMSE(net), fast=fast)
    p = {k: v.detach() for k, v in learner.init_params().items()}
    ctx = {"net.context": p["net.context"].unsqueeze(0).repeat(tasks, 1)}
    fixed = {k: v for k, v in p.items() if k != "net.context"}
    b = batch(tasks, 64)
    return best_ms(lambda: learner.support_grads(ctx, fixed, b), repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tasks", type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; CoordinateMLP "
          "2-64-64-1 tanh, periodic 4, context 8, float32")
    print(f"{'what':<46}{'hand ms':>10}{'torch.func ms':>15}{'speed-up':>10}")
    rows = [(f"meta-gradient {a}, B={B}, {STEPS} steps{', +residual' if ph else ''}",
             lambda fast, a=a, ph=ph: meta_gradient(a, ph, fast, args.repeats))
            for ph in (False, True) for a in ("cavia", "maml")]
    rows += [(f"maml, plain 2-64-64-1 network{', +residual' if ph else ''}",
              lambda fast, ph=ph: meta_gradient("maml", ph, fast, args.repeats, plain=True))
             for ph in (False, True)]
    rows += [(f"context support grads, {args.tasks} tasks{', +residual' if ph else ''}",
              lambda fast, ph=ph: support_step(ph, fast, args.tasks, args.repeats))
             for ph in (False, True)]
    for label, fn in rows:
        hand, func = fn(True), fn(False)
        print(f"{label:<46}{hand:>10.2f}{func:>15.2f}{func / hand:>9.1f}x")


if __name__ == "__main__":
    main()
