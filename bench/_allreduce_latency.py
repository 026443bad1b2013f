"""All-reduce latency of one meta-gradient's message under ``torchrun`` (gloo).

    OMP_NUM_THREADS=1 torchrun --standalone --nproc-per-node=2 bench/_allreduce_latency.py

Times ``all_reduce`` of ``--numel`` float32 values (default 4421: the quick-start
network's parameters plus the step's three scalars) back to back, and again right
after every rank computed for ``--busy-ms`` (small matrix products, as a meta-step
does), which is when a training step reduces: blocking in the collective, and as
training waits by default (polling the pending work, ``SCIMETA_DIST_WAIT=poll``).
Rank 0 prints the median and 90th percentile in milliseconds. Run by ``bench/bench_scaling.py``.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.distributed as dist

from scimeta.train.distributed import _all_reduce


def busy(ms: float) -> None:
    """Compute for ``ms`` milliseconds."""
    t0, a = time.perf_counter(), torch.randn(64, 64)
    while (time.perf_counter() - t0) * 1e3 < ms:
        a = torch.tanh(a @ a * 0.01)


def timings(x: torch.Tensor, n: int, busy_ms: float, reduce=dist.all_reduce) -> list[float]:
    out = []
    for _ in range(n):
        if busy_ms:
            busy(busy_ms)
        t0 = time.perf_counter()
        reduce(x)
        out.append((time.perf_counter() - t0) * 1e3)
    return sorted(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--numel", type=int, default=4421)
    ap.add_argument("--busy-ms", type=float, default=25.0)
    ap.add_argument("--repeats", type=int, default=200)
    args = ap.parse_args()
    dist.init_process_group("gloo")
    x = torch.zeros(args.numel)
    timings(x, 20, 0.0)  # warm-up: connections, buffers
    idle = timings(x, args.repeats, 0.0)
    loaded = timings(x, args.repeats // 2, args.busy_ms)
    polled = timings(x, args.repeats // 2, args.busy_ms, reduce=_all_reduce)
    if dist.get_rank() == 0:
        for label, t in (("back to back", idle), (f"after {args.busy_ms:g} ms compute", loaded),
                         (f"after {args.busy_ms:g} ms compute, polled (scimeta's wait)",
                          polled)):
            print(f"all-reduce of {args.numel} float32, {label}: median "
                  f"{t[len(t) // 2]:.2f} ms, p90 {t[int(0.9 * len(t))]:.2f} ms")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
