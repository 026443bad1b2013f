"""Meta-iterations/s of second-order MAML on the Finn et al. (2017) sinusoid setting.

MLP 1-40-40-1 (ReLU), meta-batch 25, K = 10 support and 10 query points per task,
5 inner SGD steps of size 0.01, second order, Adam(1e-3) outer step, float32.
Compared in the same run:

- ``scimeta``           ``MAML(...)`` default (hand-batched path for ``nn.Sequential`` MLPs)
- ``scimeta-vmap``      ``MAML(..., fast=False)``: the generic ``torch.func`` vmap path
- ``plain-loop``        per-task Python loop, ``torch.autograd.grad(create_graph=True)``
- ``higher``, ``learn2learn``  per-task loops with those libraries, when importable

Every method first computes the meta-gradient for the same θ and batch; the
table reports its relative difference from the plain loop (float64 and float32).
Each timing runs in its own subprocess (``--only NAME``) so that peak memory
(``ru_maxrss``) is per method. Usage::

    python bench/bench_maml.py [--iters 30] [--rounds 3] [--threads 2]

Rates are the best of ``--rounds`` rounds of ``--iters`` meta-iterations (a fifth
as many for the slow per-task loops), each with an Adam step.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from scimeta.meta import MAML, TaskBatch

B, K, Q, STEPS, ALPHA = 25, 10, 10, 5, 0.01
METHODS = ("scimeta", "scimeta-vmap", "plain-loop", "higher", "learn2learn")
L2L_NOTE = (" (with torch 2.13 / Python 3.11: learn2learn 0.2.0's sdist ships C code from an"
            " old Cython that does not compile (longintrepr.h), and importing it needs gym and"
            " a torchvision built for this torch)")


def sinusoid_batch(gen: torch.Generator, dtype=torch.float32) -> TaskBatch:
    amp = torch.empty(B, 1, 1).uniform_(0.1, 5.0, generator=gen)
    phase = torch.empty(B, 1, 1).uniform_(0.0, math.pi, generator=gen)
    x = torch.empty(B, K + Q, 1).uniform_(-5.0, 5.0, generator=gen)
    y = amp * torch.sin(x - phase)
    x, y = x.to(dtype), y.to(dtype)
    return TaskBatch(x[:, :K], y[:, :K], x[:, K:], y[:, K:])


def make_model(dtype=torch.float32) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(1, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU(),
                         nn.Linear(40, 1)).to(dtype)


# ---- implementations: each returns (params list, meta_loss(batch) -> scalar) ----------
def scimeta_impl(model: nn.Module, fast: bool | None):
    maml = MAML(model, inner_lr=ALPHA, inner_steps=STEPS, fast=fast)
    params = maml.init_params()
    return list(params.values()), lambda b: maml.meta_loss(params, b)


def plain_impl(model: nn.Module):
    weights = [p.detach().clone().requires_grad_() for p in model.parameters()]

    def forward(w, x):
        h = F.relu(F.linear(x, w[0], w[1]))
        h = F.relu(F.linear(h, w[2], w[3]))
        return F.linear(h, w[4], w[5])

    def meta_loss(b: TaskBatch) -> torch.Tensor:
        total = 0.0
        for i in range(B):
            fast = weights
            for _ in range(STEPS):
                loss = F.mse_loss(forward(fast, b.support_x[i]), b.support_y[i])
                grads = torch.autograd.grad(loss, fast, create_graph=True)
                fast = [w - ALPHA * g for w, g in zip(fast, grads, strict=True)]
            total = total + F.mse_loss(forward(fast, b.query_x[i]), b.query_y[i])
        return total / B

    return weights, meta_loss


def higher_impl(model: nn.Module):
    import higher

    inner_opt = torch.optim.SGD(model.parameters(), lr=ALPHA)

    def meta_loss(b: TaskBatch) -> torch.Tensor:
        total = 0.0
        for i in range(B):
            with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False) as (fm, opt):
                for _ in range(STEPS):
                    opt.step(F.mse_loss(fm(b.support_x[i]), b.support_y[i]))
                total = total + F.mse_loss(fm(b.query_x[i]), b.query_y[i])
        return total / B

    return list(model.parameters()), meta_loss


def l2l_impl(model: nn.Module):
    import learn2learn as l2l

    meta = l2l.algorithms.MAML(model, lr=ALPHA, first_order=False)

    def meta_loss(b: TaskBatch) -> torch.Tensor:
        total = 0.0
        for i in range(B):
            learner = meta.clone()
            for _ in range(STEPS):
                learner.adapt(F.mse_loss(learner(b.support_x[i]), b.support_y[i]))
            total = total + F.mse_loss(learner(b.query_x[i]), b.query_y[i])
        return total / B

    return list(meta.parameters()), meta_loss


def build(name: str, dtype=torch.float32, device: str = "cpu"):
    model = make_model(dtype).to(device)
    if name == "scimeta":
        return scimeta_impl(model, None)
    if name == "scimeta-vmap":
        return scimeta_impl(model, False)
    if name == "plain-loop":
        return plain_impl(model)
    if name == "higher":
        return higher_impl(model)
    if name == "learn2learn":
        return l2l_impl(model)
    raise SystemExit(f"unknown method {name!r}; known: {', '.join(METHODS)}")


def meta_grad(name: str, dtype) -> list[torch.Tensor]:
    params, loss_fn = build(name, dtype)
    batch = sinusoid_batch(torch.Generator().manual_seed(123), dtype)
    return list(torch.autograd.grad(loss_fn(batch), params))


def rel_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    pairs = zip(a, b, strict=True)
    num = math.sqrt(sum(float((x.double() - y.double()).square().sum()) for x, y in pairs))
    den = math.sqrt(sum(float(y.double().square().sum()) for y in b))
    return num / den


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def time_one(name: str, iters: int, warmup: int, rounds: int, device: str = "cpu") -> dict:
    """Run in a subprocess: meta-iterations/s (best of ``rounds``) and peak memory."""
    params, loss_fn = build(name, device=device)
    opt = torch.optim.Adam(params, lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    batches = [sinusoid_batch(gen).to(device) for _ in range(8)]
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    rss0 = _rss_mib()

    def step(i: int) -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(batches[i % len(batches)]).backward()
        opt.step()

    for i in range(warmup):
        step(i)
    best = math.inf
    for _ in range(rounds):
        sync()
        start = time.perf_counter()
        for i in range(iters):
            step(i)
        sync()
        best = min(best, time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if cuda:  # device memory is what matters there
        dev = torch.cuda.max_memory_allocated() / 2**20
        return {"name": name, "its": iters / best, "peak_mib": dev, "delta_mib": dev}
    return {"name": name, "its": iters / best, "peak_mib": peak, "delta_mib": peak - rss0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iters", type=int, default=30, help="timed meta-iterations (default 30)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds; the best counts")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (peak memory is then the "
                    "GPU's max_memory_allocated)")
    ap.add_argument("--only", help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.only:
        it = args.iters if args.only.startswith("scimeta") else max(3, args.iters // 5)
        print(json.dumps(time_one(args.only, it, args.warmup, args.rounds, args.device)))
        return

    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads, "
          f"MLP 1-40-40-1 ReLU, B={B}, K={K}, Q={Q}, {STEPS} inner steps, second order")
    available, skipped = [], {}
    for name in METHODS:
        try:
            build(name)
            available.append(name)
        except Exception as exc:  # optional libraries: record why and skip
            skipped[name] = f"{type(exc).__name__}: {exc}".splitlines()[0][:100]
            if name == "learn2learn":
                skipped[name] += L2L_NOTE
    ref = {dt: meta_grad("plain-loop", dt) for dt in (torch.float64, torch.float32)}
    agree = {n: {dt: rel_diff(meta_grad(n, dt), ref[dt]) for dt in ref} for n in available}

    results = {}
    for name in available:
        cmd = [sys.executable, __file__, "--only", name, "--iters", str(args.iters),
               "--warmup", str(args.warmup), "--threads", str(args.threads),
               "--rounds", str(args.rounds), "--device", args.device]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])

    base = results["plain-loop"]["its"]
    libs = [results[n]["its"] for n in ("higher", "learn2learn") if n in results]
    fastest_other = max([base, *libs])
    print(f"\n{'method':<14}{'it/s':>9}{'x plain':>9}{'x best baseline':>17}"
          f"{'peak MiB':>10}{'+MiB':>7}{'grad rel.diff f64':>19}{'f32':>10}")
    for name in available:
        r = results[name]
        a = agree[name]
        print(f"{name:<14}{r['its']:>9.2f}{r['its'] / base:>9.1f}{r['its'] / fastest_other:>17.1f}"
              f"{r['peak_mib']:>10.0f}{r['delta_mib']:>7.0f}"
              f"{a[torch.float64]:>19.1e}{a[torch.float32]:>10.1e}")
    for name, why in skipped.items():
        print(f"{name:<14} skipped: {why}")


if __name__ == "__main__":
    main()
