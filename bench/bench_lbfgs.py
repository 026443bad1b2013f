"""Cost of a test-time step: L-BFGS against SGD and Adam, data-only and with the residual.

Adapts the first ``--tasks`` tasks of a store from a run's init for ``--steps`` steps
with each optimizer (one support loss and gradient per step for all of them) and
prints wall time per task, its ratio to Adam's in the same run, and the median query
MSE reached. Rates are fixed here (this times steps; it does not choose rates):

    OMP_NUM_THREADS=1 python bench/bench_lbfgs.py OUT/runs/maml OUT/stores/extrapolate.h5
"""

from __future__ import annotations

import argparse
import time

import torch

from scimeta import registry
from scimeta.data import TaskReader
from scimeta.train.adaptation import adapt_curve
from scimeta.train.eval_inits import N_COLLOCATION, contenders
from scimeta.train.run_dir import RunDir

#: (optimizer, update rule, rate): rates as the oscillator's validation chose them
CASES = (("sgd", "sgd", 3e-3), ("adam", "adam", 1e-4), ("lbfgs", "lbfgs", 0.03),
         ("adam+physics", "adam", 3e-3), ("lbfgs+physics", "lbfgs", 1.0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("store")
    ap.add_argument("--init", default="maml")
    ap.add_argument("--tasks", type=int, default=50)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--weight", type=float, default=0.1, help="λ of the +physics cases")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rd = RunDir(args.run_dir)
    info, cfg = rd.load_info(), rd.load_config()
    dtype = getattr(torch, cfg.run.dtype)
    c = contenders(rd, cfg, info, registry.get(info["family"]), [args.init],
                   torch.device("cpu"), dtype, True)[0]
    reader = TaskReader(args.store, in_memory=True, n_collocation=N_COLLOCATION)
    batch = c.batches([reader.batch(range(args.tasks)).to(dtype=dtype)], info)[0]
    rows = []
    for _ in range(2):  # the first pass warms up; the second is reported
        rows = []
        for name, rule, rate in CASES:
            learner = c.learner(name, args.weight if name.endswith("+physics") else None)
            t0 = time.perf_counter()
            cur = adapt_curve(learner, c.state, batch, rule, rate, (args.steps,))
            rows.append((name, (time.perf_counter() - t0) / args.tasks,
                         cur.query_mse.nanmedian().item()))
    adam = {n: s for n, s, _ in rows}
    print(f"{args.init}, {args.tasks} tasks x {args.steps} steps, {args.threads} thread(s)\n")
    print("| optimizer | ms per task | / adam (same loss) | median query MSE |")
    print("|---|---|---|---|")
    for name, sec, mse in rows:
        ref = adam["adam+physics" if name.endswith("+physics") else "adam"]
        print(f"| {name} | {1e3 * sec:.1f} | {sec / ref:.2f} | {mse:.4g} |")


if __name__ == "__main__":
    main()
