"""Meta-iterations/s over meta-batch size and width, on a device against the CPU.

    python bench/bench_gpu_sweep.py [--device cuda] [--batches 25,100,250,1000]
                                    [--widths 40,128,512] [--cpu-threads 2] [--profile]

Second-order MAML (hand-batched path), MLP 1-W-W-1 tanh, K = 10, Q = 10, 5 inner SGD
steps, Adam outer step, float32 (the Finn et al. sinusoid tasks of
``bench_maml.py``). For every (meta-batch, width) it times the meta-step on
``--device`` and on the CPU with ``--cpu-threads`` threads (``--cpu-batches`` limits
the CPU column to the smaller batches, which take long there) and prints it/s and
the device/CPU ratio. ``--profile`` adds, per cell on the device, the share of the
step's wall time the CPU spends launching kernels (``cudaLaunchKernel`` and friends
in ``torch.profiler``): near 100 % means launch-bound (tiny kernels), low means the
GPU computes. ``--compile`` also times ``MAML(..., compile=True)`` (CUDA graphs via
``mode="reduce-overhead"`` are not used: the hand path recompiles per shape).
On a machine without CUDA, ``--device cpu`` runs the CPU column only.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import nn

from scimeta.meta import MAML, TaskBatch

K, Q, STEPS, ALPHA = 10, 10, 5, 0.01


def tasks(b: int, device: str) -> TaskBatch:
    g = torch.Generator().manual_seed(0)
    amp = torch.empty(b, 1, 1).uniform_(0.1, 5.0, generator=g)
    phase = torch.empty(b, 1, 1).uniform_(0.0, math.pi, generator=g)
    x = torch.empty(b, K + Q, 1).uniform_(-5.0, 5.0, generator=g)
    y = amp * torch.sin(x - phase)
    return TaskBatch(x[:, :K], y[:, :K], x[:, K:], y[:, K:]).to(device=device)


def learner(width: int, device: str, compile: bool) -> tuple[MAML, dict]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, width), nn.Tanh(), nn.Linear(width, width),
                          nn.Tanh(), nn.Linear(width, 1)).to(device)
    maml = MAML(model, ALPHA, STEPS, compile=compile)
    return maml, maml.init_params()


def rate(b: int, width: int, device: str, compile: bool, seconds: float) -> float:
    """Meta-iterations/s (best of 3 blocks of about ``seconds`` each)."""
    maml, p = learner(width, device, compile)
    opt = torch.optim.Adam(p.values(), lr=1e-3)
    batch = tasks(b, device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        maml.meta_loss(p, batch).backward()
        opt.step()

    for _ in range(3):
        step()
    sync()
    t0 = time.perf_counter()
    step()
    sync()
    n = max(2, int(seconds / max(time.perf_counter() - t0, 1e-6)))
    best = math.inf
    for _ in range(3):
        sync()
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        sync()
        best = min(best, (time.perf_counter() - t0) / n)
    return 1.0 / best


def launch_share(b: int, width: int, device: str) -> float:
    """Share of a step's CPU time spent in kernel-launch calls (profiler)."""
    from torch.profiler import ProfilerActivity, profile

    maml, p = learner(width, device, False)
    batch = tasks(b, device)
    for _ in range(3):
        maml.meta_loss(p, batch).backward()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            maml.meta_loss(p, batch).backward()
        torch.cuda.synchronize()
    events = prof.key_averages()
    launch = sum(e.self_cpu_time_total for e in events
                 if "LaunchKernel" in e.key or "cudaLaunch" in e.key)
    total = sum(e.self_cpu_time_total for e in events)
    return launch / total if total else math.nan


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batches", default="25,100,250,1000")
    ap.add_argument("--widths", default="40,128,512")
    ap.add_argument("--cpu-threads", type=int, default=2)
    ap.add_argument("--cpu-batches", default="25,100",
                    help="meta-batches also timed on the CPU (default 25,100)")
    ap.add_argument("--seconds", type=float, default=1.0, help="per timed block")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args()
    batches = [int(v) for v in args.batches.split(",")]
    widths = [int(v) for v in args.widths.split(",")]
    cpu_batches = {int(v) for v in args.cpu_batches.split(",") if v}
    dev = args.device
    torch.set_num_threads(args.cpu_threads)  # the CPU column's (and a CPU device's)
    name = torch.cuda.get_device_name(dev) if dev.startswith("cuda") else "cpu"
    print(f"torch {torch.__version__}; device {dev} ({name}); CPU column: "
          f"{args.cpu_threads} threads; MLP 1-W-W-1 tanh, K={K}, Q={Q}, {STEPS} steps, "
          "second order, float32")
    head = f"{'batch':>6}{'width':>6}{'device it/s':>13}{'cpu it/s':>10}{'ratio':>8}"
    if args.profile and dev.startswith("cuda"):
        head += f"{'launch share':>14}"
    if args.compile:
        head += f"{'compiled it/s':>15}"
    print(head)
    for b in batches:
        for w in widths:
            on_dev = rate(b, w, dev, False, args.seconds)
            line = f"{b:>6}{w:>6}{on_dev:>13.1f}"
            if dev != "cpu" and b in cpu_batches:
                on_cpu = rate(b, w, "cpu", False, args.seconds)
                line += f"{on_cpu:>10.1f}{on_dev / on_cpu:>8.1f}"
            else:
                line += f"{'-':>10}{'-':>8}"
            if args.profile and dev.startswith("cuda"):
                line += f"{launch_share(b, w, dev):>14.0%}"
            if args.compile:
                line += f"{rate(b, w, dev, True, args.seconds):>15.1f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
