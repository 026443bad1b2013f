"""Cost of a meta-Hessian-vector product against a meta-gradient, and of top-k eigenpairs.

    python bench/bench_landscape.py [--rounds 3] [--reps 10] [--k 10] [--threads 2]
                                    [--device cpu|cuda] [--dtypes float32 float64]

The quick-start surrogate: ``CoordinateMLP(1, 2, hidden=(64, 64), tanh)`` (4418
parameters), second-order MAML with K = 5 inner steps of 0.1, a meta-batch of 25
unforced-oscillator tasks with 10 support and 100 query points (generated first,
not timed). Per dtype:

- ``grad``: one meta-gradient (``meta_loss`` + ``autograd.grad``);
- ``hvp``: one product ``H v`` of :class:`scimeta.landscape.MetaHessian` once its
  meta-gradient graph is built (what Lanczos, Hutchinson and SLQ pay per product);
- ``hvp+graph``: a product at a new θ, the graph's construction included;
- ``top-k``: wall time of the ``k`` largest eigenpairs (Lanczos, tol 1e-8, best of
  ``--rounds``), with the products used and the largest relative residual.

Times are the best of ``--rounds`` rounds of ``--reps`` calls each; the ratios are to
``grad`` (target: ``hvp`` ≤ 3×).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from scimeta.data import GenerationConfig, TaskReader, generate
from scimeta.landscape import MetaHessian, eigenpairs
from scimeta.meta import MAML
from scimeta.nn import CoordinateMLP

B, K_SUPPORT, QUERY, STEPS, ALPHA = 25, 10, 100, 5, 0.1


def best_time(fn, reps: int, rounds: int, sync) -> float:
    fn()
    best = float("inf")
    for _ in range(rounds):
        sync()
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        sync()
        best = min(best, (time.perf_counter() - start) / reps)
    return best


def measure(store: Path, dtype: torch.dtype, device: str, reps: int, rounds: int,
            k: int) -> dict:
    torch.manual_seed(0)
    model = CoordinateMLP(1, 2, hidden=(64, 64), activation="tanh").to(device=device,
                                                                        dtype=dtype)
    maml = MAML(model, inner_lr=ALPHA, inner_steps=STEPS)
    batch = TaskReader(store, in_memory=True).batch(range(B)).to(device=device, dtype=dtype)
    params = maml.init_params()
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def grad() -> None:
        torch.autograd.grad(maml.meta_loss(params, batch), list(params.values()))

    hess = MetaHessian(maml, params, batch)
    v = torch.randn(hess.dim, generator=torch.Generator().manual_seed(1)).to(device=device,
                                                                              dtype=dtype)
    t_grad = best_time(grad, reps, rounds, sync)
    t_hvp = best_time(lambda: hess.matvec(v), reps, rounds, sync)

    def fresh() -> None:  # the graph at a new θ, then one product
        leaves = {n: t.detach().clone().requires_grad_(True) for n, t in params.items()}
        g = torch.autograd.grad(maml.meta_loss(leaves, batch), list(leaves.values()),
                                create_graph=True)
        torch.autograd.grad(g, list(leaves.values()),
                            grad_outputs=list(hess.flat.unflatten(v).values()))

    t_fresh = best_time(fresh, max(1, reps // 2), rounds, sync)
    t_top = float("inf")
    for _ in range(rounds):  # the machine may be shared: the best round counts
        start = time.perf_counter()
        top = eigenpairs(hess, k, "top", tol=1e-8)
        sync()
        t_top = min(t_top, time.perf_counter() - start)
    rel = float(np.max(top.residuals / np.abs(top.values)))
    return {"dtype": str(dtype).replace("torch.", ""), "P": hess.dim, "grad": t_grad,
            "hvp": t_hvp, "fresh": t_fresh, "top": t_top, "products": top.products,
            "residual": rel, "lam1": float(top.values[0])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds; the best counts")
    ap.add_argument("--reps", type=int, default=10, help="calls per round (default 10)")
    ap.add_argument("--k", type=int, default=10, help="top eigenpairs (default 10)")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--dtypes", nargs="+", default=["float32", "float64"],
                    help="dtypes to measure (default: float32 float64)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "unforced-train.h5"
        generate(GenerationConfig("oscillator", "unforced-train", tasks=B, seed=0,
                                  support=K_SUPPORT, query=QUERY), store)
        rows = [measure(store, getattr(torch, d), args.device, args.reps, args.rounds, args.k)
                for d in args.dtypes]
    print(f"meta-HVP vs meta-gradient: CoordinateMLP 1-64-64-2 tanh, MAML K={STEPS}, "
          f"meta-batch {B}, {K_SUPPORT}+{QUERY} points, {args.device}, "
          f"{args.threads} threads, torch {torch.__version__}")
    print(f"{'dtype':8} {'P':>5} {'grad ms':>8} {'hvp ms':>8} {'hvp/grad':>8} "
          f"{'hvp+graph/grad':>14} {'top-' + str(args.k) + ' s':>8} {'products':>8} "
          f"{'max rel resid':>13} {'lambda_1':>9}")
    for r in rows:
        print(f"{r['dtype']:8} {r['P']:>5} {1e3 * r['grad']:8.1f} {1e3 * r['hvp']:8.1f} "
              f"{r['hvp'] / r['grad']:8.2f} {r['fresh'] / r['grad']:14.2f} {r['top']:8.1f} "
              f"{r['products']:8d} {r['residual']:13.1e} {r['lam1']:9.4g}")


if __name__ == "__main__":
    main()
