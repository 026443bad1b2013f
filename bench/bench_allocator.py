"""The allocator's share of a rate selection: glibc's default against the heap tuning.

Runs the same batched adaptation twice, each in a fresh process: ``--tasks`` tasks of a
store repeated over ``--rates`` rates (the batch a validation rate selection adapts),
``--steps`` L-BFGS steps on the support data plus the residual (λ = 1) from a run's
init, once with ``SCIMETA_MALLOC=system`` and once with the tuning of
:mod:`scimeta.runtime.allocator` (what the ``scimeta`` command applies). Prints wall,
user and system time, minor page faults, the median query MSE (which must agree) and
the ratio of wall times:

    OMP_NUM_THREADS=1 python bench/bench_allocator.py OUT/runs/decoder OUT/stores/validation.h5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

GRID = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)


def worker(args: argparse.Namespace) -> None:
    import resource
    import time

    import torch

    from scimeta import registry
    from scimeta.data import TaskReader
    from scimeta.runtime.allocator import tune_allocator
    from scimeta.train.adaptation import adapt_curve, repeat_tasks
    from scimeta.train.eval_inits import N_COLLOCATION, contenders
    from scimeta.train.run_dir import RunDir

    tuned = tune_allocator()
    torch.set_num_threads(args.threads)
    rd = RunDir(args.run_dir)
    info, cfg = rd.load_info(), rd.load_config()
    (con,) = contenders(rd, cfg, info, registry.get(info["family"]), [args.init],
                        torch.device("cpu"), torch.float32, True)
    reader = TaskReader(args.store, n_collocation=N_COLLOCATION)
    batch = con.batches([reader.batch(range(min(args.tasks, len(reader))))], info)[0]
    rates = torch.tensor(GRID[:args.rates], dtype=torch.float32)
    big = repeat_tasks(batch, len(rates))
    per_task = rates.repeat_interleave(batch.num_tasks)
    t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    curve = adapt_curve(con.learner("lbfgs+physics", 1.0), con.state, big, "lbfgs",
                        per_task, (args.steps,))
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"tuned": tuned, "wall": time.perf_counter() - t0,
                      "user": r1.ru_utime - r0.ru_utime, "sys": r1.ru_stime - r0.ru_stime,
                      "faults": r1.ru_minflt - r0.ru_minflt,
                      "median": float(curve.query_mse[-1].nanmedian())}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("store")
    ap.add_argument("--init", default="random")
    ap.add_argument("--tasks", type=int, default=50)
    ap.add_argument("--rates", type=int, default=7, choices=range(1, len(GRID) + 1))
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    rows = {}
    for name, value in (("glibc default", "system"), ("heap (scimeta)", "heap")):
        env = {**os.environ, "SCIMETA_MALLOC": value}
        out = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--worker"], env=env,
                             capture_output=True, text=True, check=True)
        rows[name] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{args.tasks} tasks x {args.rates} rates, {args.steps} L-BFGS + residual steps, "
          f"init {args.init}, {args.threads} thread(s)\n")
    print(f"{'allocator':<16} {'wall s':>8} {'user s':>8} {'sys s':>8} {'faults':>10} "
          f"{'median MSE':>12}")
    for name, r in rows.items():
        print(f"{name:<16} {r['wall']:8.1f} {r['user']:8.1f} {r['sys']:8.1f} "
              f"{r['faults']:10d} {r['median']:12.6g}")
    a, b = rows["glibc default"], rows["heap (scimeta)"]
    print(f"\nwall time, default / heap: {a['wall'] / b['wall']:.2f}x; same result: "
          f"{a['median'] == b['median']}")


if __name__ == "__main__":
    main()
