"""Meta-iterations/s of MAML on the Finn et al. (2017) sinusoid setting, per configuration.

Default configuration: MLP 1-40-40-1 (ReLU), meta-batch 25, K = 10 support and 10
query points per task, 5 inner SGD steps of size 0.01, second order, Adam(1e-3)
outer step, float32. ``--arch tanh64x3`` (MLP 1-64-64-64-1 tanh), ``--first-order``
and ``--query`` change it; ``--all-configs`` runs the four configurations
{relu40, tanh64x3} x {second, first order} and prints one table of ratios.
Compared in the same run:

- ``scimeta``           ``MAML(...)`` default (hand-batched path for ``nn.Sequential`` MLPs)
- ``scimeta-compile``   ``MAML(..., compile=True)``: the hand-batched path through
                        ``torch.compile`` (with ``--compile``)
- ``scimeta-vmap``      ``MAML(..., fast=False)``: the generic ``torch.func`` vmap path
- ``vmap-compile``      not a library: ``torch.func.grad`` of the ``vmap``-ed inner loop,
                        compiled with ``torch.compile`` (``--compile`` to include it;
                        compiling takes minutes on a small CPU)
- ``plain-loop``        per-task Python loop, ``torch.autograd.grad(create_graph=True)``
- ``higher``, ``torchopt``, ``learn2learn``  per-task loops with those libraries, when
                        importable (``torchopt``: its functional ``sgd`` + ``apply_updates``)

Every method first computes the meta-gradient for the same θ and batch; the
table reports its relative difference from the plain loop (float64 and float32).
Each timing runs in its own subprocess (``--only NAME``) so that peak memory
(``ru_maxrss``) is per method. Usage::

    python bench/bench_maml.py [--iters 30] [--rounds 3] [--threads 2] [--all-configs]

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
from torch.func import functional_call

from scimeta.meta import MAML, TaskBatch

B, K, STEPS, ALPHA = 25, 10, 5, 0.01
METHODS = ("scimeta", "scimeta-compile", "scimeta-vmap", "vmap-compile", "plain-loop",
           "higher", "torchopt", "learn2learn")
LIBRARIES = ("higher", "torchopt", "learn2learn")
CONFIGS = (("relu40", False), ("relu40", True), ("tanh64x3", False), ("tanh64x3", True))


class Config:
    """The configuration under test (set from the command line; the same in every
    subprocess)."""

    arch = "relu40"
    first_order = False
    query = 10


CFG = Config()
L2L_NOTE = (" (with torch 2.13 / Python 3.11: learn2learn 0.2.0's sdist ships C code from an"
            " old Cython that does not compile (longintrepr.h), and importing it needs gym and"
            " a torchvision built for this torch)")


def sinusoid_batch(gen: torch.Generator, dtype=torch.float32) -> TaskBatch:
    amp = torch.empty(B, 1, 1).uniform_(0.1, 5.0, generator=gen)
    phase = torch.empty(B, 1, 1).uniform_(0.0, math.pi, generator=gen)
    x = torch.empty(B, K + CFG.query, 1).uniform_(-5.0, 5.0, generator=gen)
    y = amp * torch.sin(x - phase)
    x, y = x.to(dtype), y.to(dtype)
    return TaskBatch(x[:, :K], y[:, :K], x[:, K:], y[:, K:])


def make_model(dtype=torch.float32) -> nn.Sequential:
    torch.manual_seed(0)
    if CFG.arch == "relu40":
        return nn.Sequential(nn.Linear(1, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU(),
                             nn.Linear(40, 1)).to(dtype)
    return nn.Sequential(nn.Linear(1, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(),
                         nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1)).to(dtype)


# ---- implementations: each returns (params list, meta_loss(batch) -> scalar) ----------
class _Carry(torch.autograd.Function):
    """A zero "loss" whose backward hands precomputed gradients to the leaves, so
    methods that return their meta-gradient directly time like the others."""

    @staticmethod
    def forward(ctx, n: int, *args):
        ctx.grads = args[n:]
        return args[0].new_zeros(())

    @staticmethod
    def backward(ctx, _out):
        return (None, *ctx.grads, *([None] * len(ctx.grads)))


def scimeta_impl(model: nn.Module, fast: bool | None, compile: bool = False):
    """``learner.meta_gradient`` (what ``scimeta train`` calls each step)."""
    maml = MAML(model, inner_lr=ALPHA, inner_steps=STEPS, fast=fast,
                first_order=CFG.first_order, compile=compile)
    params = maml.init_params()
    leaves = list(params.values())

    def loss_fn(b: TaskBatch) -> torch.Tensor:
        _, g = maml.meta_gradient(params, b)
        return _Carry.apply(len(leaves), *leaves, *[g[k] for k in params])

    return leaves, loss_fn


def _inner_grads(loss: torch.Tensor, fast: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """Second order: differentiable inner gradient; first order: detached (the
    update is then the identity for the meta-gradient)."""
    return torch.autograd.grad(loss, fast, create_graph=not CFG.first_order)


def plain_impl(model: nn.Module):
    names = [n for n, _ in model.named_parameters()]
    weights = [p.detach().clone().requires_grad_() for p in model.parameters()]

    def forward(w, x):
        return functional_call(model, dict(zip(names, w, strict=True)), (x,))

    def meta_loss(b: TaskBatch) -> torch.Tensor:
        total = 0.0
        for i in range(B):
            fast = weights
            for _ in range(STEPS):
                loss = F.mse_loss(forward(fast, b.support_x[i]), b.support_y[i])
                grads = _inner_grads(loss, fast)
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
                    # first order: the gradient enters the update detached
                    cb = (lambda gs: [g.detach() for g in gs]) if CFG.first_order else None
                    opt.step(F.mse_loss(fm(b.support_x[i]), b.support_y[i]),
                             grad_callback=cb)
                total = total + F.mse_loss(fm(b.query_x[i]), b.query_y[i])
        return total / B

    return list(model.parameters()), meta_loss


def l2l_impl(model: nn.Module):
    import learn2learn as l2l

    meta = l2l.algorithms.MAML(model, lr=ALPHA, first_order=CFG.first_order)

    def meta_loss(b: TaskBatch) -> torch.Tensor:
        total = 0.0
        for i in range(B):
            learner = meta.clone()
            for _ in range(STEPS):
                learner.adapt(F.mse_loss(learner(b.support_x[i]), b.support_y[i]))
            total = total + F.mse_loss(learner(b.query_x[i]), b.query_y[i])
        return total / B

    return list(meta.parameters()), meta_loss


def torchopt_impl(model: nn.Module):
    import torchopt

    names = [n for n, _ in model.named_parameters()]
    weights = tuple(p.detach().clone().requires_grad_() for p in model.parameters())
    inner = torchopt.sgd(lr=ALPHA)

    def meta_loss(b: TaskBatch) -> torch.Tensor:
        total = 0.0
        for i in range(B):
            fast, state = weights, inner.init(weights)
            for _ in range(STEPS):
                out = functional_call(model, dict(zip(names, fast, strict=True)),
                                      (b.support_x[i],))
                grads = _inner_grads(F.mse_loss(out, b.support_y[i]), list(fast))
                updates, state = inner.update(grads, state, inplace=False)
                fast = torchopt.apply_updates(fast, updates, inplace=False)
            out = functional_call(model, dict(zip(names, fast, strict=True)), (b.query_x[i],))
            total = total + F.mse_loss(out, b.query_y[i])
        return total / B

    return list(weights), meta_loss


def compiled_impl(model: nn.Module):
    """``torch.compile`` of ``torch.func.grad`` of the vmapped meta-loss: the whole
    meta-gradient is one traced function; the returned "loss" carries it in a
    custom backward so that ``time_one`` treats every method alike."""
    from torch.func import grad, vmap

    params = {n: p.detach().clone() for n, p in model.named_parameters()}

    def task_loss(p, sx, sy, qx, qy):
        fast = p
        for _ in range(STEPS):
            g = grad(lambda q: F.mse_loss(functional_call(model, q, (sx,)), sy))(fast)
            if CFG.first_order:
                g = {k: v.detach() for k, v in g.items()}
            fast = {k: fast[k] - ALPHA * g[k] for k in fast}
        return F.mse_loss(functional_call(model, fast, (qx,)), qy)

    def meta_loss(p, sx, sy, qx, qy):
        return vmap(task_loss, in_dims=(None, 0, 0, 0, 0))(p, sx, sy, qx, qy).mean()

    meta_grad_fn = torch.compile(grad(meta_loss, has_aux=False))
    leaves = [v.requires_grad_() for v in params.values()]

    def loss_fn(b: TaskBatch) -> torch.Tensor:
        detached = {k: v.detach() for k, v in params.items()}
        g = meta_grad_fn(detached, b.support_x, b.support_y, b.query_x, b.query_y)
        return _Carry.apply(len(leaves), *leaves, *[g[k] for k in params])

    return leaves, loss_fn


def build(name: str, dtype=torch.float32, device: str = "cpu"):
    model = make_model(dtype).to(device)
    if name == "scimeta":
        return scimeta_impl(model, None)
    if name == "scimeta-compile":
        return scimeta_impl(model, None, compile=True)
    if name == "scimeta-vmap":
        return scimeta_impl(model, False)
    if name == "plain-loop":
        return plain_impl(model)
    if name == "higher":
        return higher_impl(model)
    if name == "learn2learn":
        return l2l_impl(model)
    if name == "torchopt":
        return torchopt_impl(model)
    if name == "vmap-compile":
        return compiled_impl(model)
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


def run_config(args: argparse.Namespace) -> dict:
    """Check agreement and time every available method for the configuration in CFG;
    print its table and return ``{"results": ..., "skipped": ...}``."""
    order = "first" if CFG.first_order else "second"
    arch = "1-40-40-1 ReLU" if CFG.arch == "relu40" else "1-64-64-64-1 tanh"
    print(f"\ntorch {torch.__version__}, device {args.device}, {args.threads} threads, MLP "
          f"{arch}, B={B}, K={K}, Q={CFG.query}, {STEPS} inner steps, {order} order")
    methods = [m for m in METHODS if args.compile or not m.endswith("compile")]
    available, skipped = [], {}
    for name in methods:
        try:
            if name in LIBRARIES or name == "vmap-compile":
                __import__({"vmap-compile": "torch"}.get(name, name))
            available.append(name)
        except Exception as exc:  # optional libraries: record why and skip
            skipped[name] = f"{type(exc).__name__}: {exc}".splitlines()[0][:100]
            if name == "learn2learn":
                skipped[name] += L2L_NOTE
    # compiled paths: agreement in float32 only (a second compile in float64 takes minutes)
    dts = {n: (torch.float32,) if n.endswith("compile") else (torch.float64, torch.float32)
           for n in available}
    ref = {dt: meta_grad("plain-loop", dt) for dt in (torch.float64, torch.float32)}
    agree = {n: {dt: rel_diff(meta_grad(n, dt), ref[dt]) for dt in dts[n]} for n in available}
    results = {}
    for name in available:
        cmd = [sys.executable, __file__, "--only", name, "--iters", str(args.iters),
               "--warmup", str(args.warmup), "--threads", str(args.threads),
               "--rounds", str(args.rounds), "--device", args.device, "--arch", CFG.arch,
               "--query", str(CFG.query)] + (["--first-order"] if CFG.first_order else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
    base = results["plain-loop"]["its"]
    libs = [results[n]["its"] for n in LIBRARIES if n in results]
    fastest_other = max([base, *libs])
    print(f"{'method':<14}{'it/s':>9}{'x plain':>9}{'x best baseline':>17}"
          f"{'peak MiB':>10}{'+MiB':>7}{'grad rel.diff f64':>19}{'f32':>10}")
    for name in available:
        r, a = results[name], agree[name]
        f64 = f"{a[torch.float64]:.1e}" if torch.float64 in a else "-"
        print(f"{name:<14}{r['its']:>9.2f}{r['its'] / base:>9.1f}{r['its'] / fastest_other:>17.1f}"
              f"{r['peak_mib']:>10.0f}{r['delta_mib']:>7.0f}{f64:>19}"
              f"{a[torch.float32]:>10.1e}")
    for name, why in skipped.items():
        print(f"{name:<14} skipped: {why}")
    return {"results": results, "skipped": skipped}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iters", type=int, default=30, help="timed meta-iterations (default 30)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds; the best counts")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (peak memory is then the "
                    "GPU's max_memory_allocated)")
    ap.add_argument("--arch", choices=("relu40", "tanh64x3"), default="relu40")
    ap.add_argument("--first-order", action="store_true")
    ap.add_argument("--query", type=int, default=10, help="query points per task (default 10)")
    ap.add_argument("--all-configs", action="store_true",
                    help="the four configurations {relu40, tanh64x3} x {2nd, 1st order}")
    ap.add_argument("--compile", action="store_true",
                    help="also time vmap-compile (torch.compile; minutes of compiling)")
    ap.add_argument("--only", help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    CFG.arch, CFG.first_order, CFG.query = args.arch, args.first_order, args.query
    if args.only:
        slow = args.only in ("plain-loop", *LIBRARIES)
        it = max(3, args.iters // 5) if slow else args.iters
        print(json.dumps(time_one(args.only, it, args.warmup, args.rounds, args.device)))
        return
    configs = CONFIGS if args.all_configs else ((args.arch, args.first_order),)
    summary = []
    for arch, first in configs:
        CFG.arch, CFG.first_order = arch, first
        res = run_config(args)["results"]
        libs = {n: res[n]["its"] for n in LIBRARIES if n in res}
        lib = max(libs, key=libs.__getitem__) if libs else "plain-loop"
        lib_its = libs[lib] if libs else res["plain-loop"]["its"]
        ours = max(res[n]["its"] for n in ("scimeta", "scimeta-compile") if n in res)
        summary.append((arch, "1st" if first else "2nd", lib, lib_its, ours,
                        res.get("vmap-compile", {}).get("its")))
    if len(summary) > 1:
        print("\nscimeta: the faster of the eager and compiled hand-batched paths")
        print(f"\n{'config':<16}{'fastest library':>20}{'scimeta':>9}{'ratio':>8}"
              f"{'vmap-compile':>14}{'scimeta/compile':>17}")
        for arch, order, lib, lib_its, ours, comp in summary:
            c = f"{comp:>14.1f}{ours / comp:>17.2f}" if comp else f"{'-':>14}{'-':>17}"
            print(f"{arch + ' ' + order:<16}{lib + f' {lib_its:.1f}':>20}{ours:>9.1f}"
                  f"{ours / lib_its:>8.1f}{c}")


if __name__ == "__main__":
    main()
