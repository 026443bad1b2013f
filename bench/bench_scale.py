"""Whole commands at scale: `scimeta generate` and `scimeta evaluate`, wall clock.

    OMP_NUM_THREADS=1 python bench/bench_scale.py [--quick] [--keep DIR]

1. ``scimeta generate oscillator --regime train`` of 1,000 and 10,000 tasks with 1 and 2
   workers: wall time, tasks/s, the rate against the 1,000-task run with the same
   workers (1.0: the rate does not fall with the store's size) and against 1 worker.
2. ``scimeta evaluate`` of a small run (trained here with ``scimeta train``: MLP
   1-32-32-2 tanh, MAML with the fomaml and joint baselines, 200 iterations on 200
   unforced-oscillator tasks; four inits with random) on test stores of 50, 100 and
   200 tasks, SGD at budgets 0,1,5,10,50,200 with rates chosen on a 20-task
   validation store: wall time and seconds per test task.

Each command runs in its own process (``python -m scimeta``), so the times include
start-up. ``--quick`` shrinks every size (a check that the script runs, in about a
minute). Prints the two tables.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

SIZES = {
    "full": dict(gen=(1000, 10000), test=(50, 100, 200), train=200, iters=200,
                 budgets="0,1,5,10,50,200"),
    "quick": dict(gen=(100, 400), test=(10, 20), train=40, iters=10, budgets="0,1,5,20"),
}


def _run(*args: str, cwd: Path) -> float:
    """Wall seconds of ``python -m scimeta ARGS`` (raises with its stderr on failure)."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "scimeta", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"scimeta {' '.join(args)} failed ({done.returncode}):\n"
                         f"{done.stderr[-2000:]}")
    return wall


def _store(cwd: Path, name: str, regime: str, tasks: int, seed: int, *extra: str) -> None:
    _run("generate", "oscillator", "--regime", regime, "--tasks", str(tasks), "--seed",
         str(seed), "--out", f"{name}.h5", *extra, cwd=cwd)


def bench_generate(cwd: Path, sizes: tuple[int, ...]) -> list[tuple]:
    rows = []
    for workers in (1, 2):
        first = None
        for n in sizes:
            wall = _run("generate", "oscillator", "--regime", "train", "--tasks", str(n),
                        "--out", f"gen-{n}-{workers}.h5", "--workers", str(workers), cwd=cwd)
            rate = n / wall
            first = first or rate
            rows.append((n, workers, wall, rate, rate / first))
            (cwd / f"gen-{n}-{workers}.h5").unlink()
    return rows


def bench_evaluate(cwd: Path, size: dict) -> tuple[float, list[tuple]]:
    _store(cwd, "train", "unforced-train", size["train"], 0)
    _store(cwd, "validation", "unforced-test-extrapolate", 20, 1, "--param", "omega0=2.5:3.0")
    (cwd / "run.toml").write_text(textwrap.dedent(f"""\
        [data]
        train = "train.h5"
        [model]
        hidden = [32, 32]
        activation = "tanh"
        [meta]
        algorithm = "maml"
        inner_lr = 0.1
        inner_steps = 5
        meta_batch = 10
        baselines = ["fomaml", "joint"]
        [optim]
        lr = 0.001
        iterations = {size["iters"]}
        [run]
        seed = 0
        checkpoint_every = {size["iters"]}
        validate_every = {size["iters"]}
        """))
    t_train = _run("train", "run.toml", "--run-dir", "run", cwd=cwd)
    rows = []
    for n in size["test"]:
        _store(cwd, f"test-{n}", "unforced-test-interpolate", n, 2)
        wall = _run("evaluate", "run", "--data", f"test-{n}.h5", "--validation",
                    "validation.h5", "--optimizers", "sgd", "--budgets", size["budgets"],
                    cwd=cwd)
        rows.append((n, wall, wall / n))
    return t_train, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes: check the script")
    ap.add_argument("--keep", help="work in this folder and keep it (default: a temp dir)")
    args = ap.parse_args()
    size = SIZES["quick" if args.quick else "full"]
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(args.keep or tmp)
        cwd.mkdir(parents=True, exist_ok=True)
        gen = bench_generate(cwd, size["gen"])
        t_train, ev = bench_evaluate(cwd, size)
    base = size["gen"][0]
    print(f"scimeta generate oscillator --regime train (cpus: {os.cpu_count()})")
    print(f"{'tasks':>7}{'workers':>9}{'wall s':>9}{'tasks/s':>10}{f'x {base} tasks':>14}"
          f"{'x 1 worker':>12}")
    one = {n: rate for n, w, _, rate, _ in gen if w == 1}
    for n, w, wall, rate, ratio in gen:
        print(f"{n:>7}{w:>9}{wall:>9.1f}{rate:>10.1f}{ratio:>13.2f}x{rate / one[n]:>11.2f}x")
    print()
    print(f"scimeta evaluate: inits maml, fomaml, joint, random; sgd; budgets "
          f"{size['budgets']}; rates on a 20-task validation store (train took "
          f"{t_train:.1f} s)")
    print(f"{'test tasks':>11}{'wall s':>9}{'s/task':>9}")
    for n, wall, per in ev:
        print(f"{n:>11}{wall:>9.1f}{per:>9.3f}")


if __name__ == "__main__":
    main()
