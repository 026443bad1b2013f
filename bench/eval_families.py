"""Does the springboard beat the bullseye on every ODE family? A short-budget sweep.

    python bench/eval_families.py [--iterations 1500] [--families oscillator,lorenz]

For each family: generate train (300 tasks) and test-interpolate / test-extrapolate
(50 tasks each) stores with K = 10 support and Q = 80 query points, train
second-order MAML and the fomaml and joint baselines (MLP 1-64-64-C tanh, outputs
scaled by their spread (--normalize), inner_lr 0.1 (--inner-lr), 5 inner steps,
meta-batch 25, gradient clipping at 10), then adapt
every init for 5 steps and print median query MSE ratios (maml / random,
maml / joint). Same hyperparameters for every family: an untuned baseline sweep,
not a tuned result.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from scimeta.data import GenerationConfig, generate
from scimeta.runtime.config import from_dict
from scimeta.train import TrainConfig, train
from scimeta.train.evaluate import evaluate, summary_table

FAMILIES = ("oscillator", "lotka_volterra", "van_der_pol", "lorenz", "pendulum", "glycolytic")


def run_family(name: str, root: Path, iterations: int, inner_lr: float,
               normalize: str) -> list[tuple]:
    sizes = {"train": 300, "test-interpolate": 50, "test-extrapolate": 50}
    root.mkdir(parents=True, exist_ok=True)
    for k, (regime, n) in enumerate(sizes.items()):
        generate(GenerationConfig(name, regime, tasks=n, seed=k, support=10, query=80),
                 root / f"{regime}.h5", workers=2, resume=True)
    cfg = from_dict(TrainConfig, {
        "data": {"train": str(root / "train.h5")},
        "model": {"hidden": [64, 64], "normalize": normalize},
        "meta": {"inner_lr": inner_lr, "inner_steps": 5, "meta_batch": 25,
                 "baselines": ["fomaml", "joint"]},
        "optim": {"lr": 1e-3, "iterations": iterations, "grad_clip": 10.0},
        "run": {"log_every": 500, "validate_every": 10**6, "checkpoint_every": 10**6},
    })
    train(cfg, root / "run", resume=True)
    rows = []
    for regime in ("test-interpolate", "test-extrapolate"):
        ds = evaluate(root / "run", root / f"{regime}.h5", steps=5, write=False)
        table = {r["init"]: r for r in summary_table(ds)}
        m = table["maml"]
        rows.append((name, regime, m["median"], m["ratio_to_random"], m["ratio_to_joint"],
                     table["fomaml"]["ratio_to_random"]))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--iterations", type=int, default=1500)
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--inner-lr", type=float, default=0.1)
    ap.add_argument("--normalize", default="outputs", choices=("none", "outputs", "both"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{'family':<16}{'regime':<18}{'maml MSE':>10}{'maml/random':>13}"
          f"{'maml/joint':>12}{'fomaml/random':>15}{'seconds':>9}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.families.split(","):
            t0 = time.perf_counter()
            rows = run_family(name, Path(tmp) / name, args.iterations, args.inner_lr,
                              args.normalize)
            for fam, regime, med, r_rand, r_joint, f_rand in rows:
                print(f"{fam:<16}{regime:<18}{med:>10.3g}{r_rand:>13.3f}{r_joint:>12.3f}"
                      f"{f_rand:>15.3f}{time.perf_counter() - t0:>9.0f}", flush=True)


if __name__ == "__main__":
    main()
