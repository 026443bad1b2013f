"""The weight-gradient product's backward layout (``scimeta/meta/_layouts.py``), A/B.

    OMP_NUM_THREADS=1 python bench/bench_layouts.py

Times ``learner.meta_gradient`` on the Finn et al. sinusoid setting of
``bench_maml.py`` (meta-batch 25, K = Q = 10, 5 inner steps, float32, eager) with the
hand-batched path as shipped (:func:`scimeta.meta._layouts.outer`) and with the plain
``torch.bmm(dz.mT, h)`` it replaced, alternating rounds in one process so that both
see the same machine load. Prints meta-iterations/s (best round) and the ratio for
the four configurations {relu40, tanh64x3} x {2nd, 1st order}.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import scimeta.meta._fast as fast_path
from scimeta.meta import MAML

BENCH = Path(__file__).resolve().parent


def _plain_outer(d: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    return torch.bmm(d.mT, r)


def _rate(maml: MAML, params: dict, batches: list, iters: int) -> float:
    t0 = time.perf_counter()
    for i in range(iters):
        maml.meta_gradient(params, batches[i % len(batches)])
    return iters / (time.perf_counter() - t0)


def main() -> None:
    import sys

    sys.path.insert(0, str(BENCH))
    import bench_maml as bm

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=60, help="meta-iterations per round")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds per variant")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    shipped = fast_path.outer
    print(f"torch {torch.__version__}, {args.threads} thread(s); meta-iterations/s, best of "
          f"{args.rounds} alternating rounds of {args.iters}")
    print(f"{'config':<16}{'plain bmm':>11}{'outer':>9}{'ratio':>8}")
    for arch in ("relu40", "tanh64x3"):
        for first_order in (False, True):
            bm.CFG.arch, bm.CFG.first_order = arch, first_order
            maml = MAML(bm.make_model(), inner_lr=bm.ALPHA, inner_steps=bm.STEPS,
                        first_order=first_order)
            params = maml.init_params()
            batches = [bm.sinusoid_batch(torch.Generator().manual_seed(i)) for i in range(4)]
            best = {"plain": 0.0, "outer": 0.0}
            for _ in range(args.rounds):
                for name, fn in (("plain", _plain_outer), ("outer", shipped)):
                    fast_path.outer = fn
                    _rate(maml, params, batches, 10)  # warm-up after the switch
                    best[name] = max(best[name], _rate(maml, params, batches, args.iters))
            fast_path.outer = shipped
            label = f"{arch} {'1st' if first_order else '2nd'}"
            print(f"{label:<16}{best['plain']:>11.1f}{best['outer']:>9.1f}"
                  f"{best['outer'] / best['plain']:>8.2f}")


if __name__ == "__main__":
    main()
