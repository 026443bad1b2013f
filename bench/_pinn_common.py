"""Pieces of ``bench/meta_pinn.py``: families and their parameter splits, sizes, stores,
the network, the IC/BC of each family, and the relative-L2 evaluator.

Kept apart so that the script holds only the run and its CLI. Nothing here prints;
see docs/meta-pinn.md for the protocol.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from scimeta.data import GenerationConfig, TaskReader, generate, validate
from scimeta.meta import PhysicsLoss
from scimeta.nn import CoordinateMLP, Rescaled
from scimeta.registry import get
from scimeta.train.pinn import ic_bc_support, relative_l2, uniform_collocation
from scimeta.train.pinn_periodic import (
    PeriodicPhysicsLoss,
    initial_support,
    periodic_pairs,
    with_pairs,
)

INITS = ("maml", "random", "joint", "conditioned")
SETTINGS = ("zero-data", "10-points")
THRESHOLD = 1e-2


@dataclasses.dataclass(frozen=True)
class Size:
    """Every size of one run (``--smoke`` or full)."""

    train_tasks: int = 96
    val_tasks: int = 4
    test_tasks: int = 8
    train_query: int = 400
    n_ic: int = 64
    n_bc: int = 32
    train_colloc: int = 512
    test_colloc: int = 1024
    meta_iters: int = 600
    meta_batch: int = 4
    inner_steps: int = 3
    inner_lr: float = 0.01
    meta_weight: float = 1.0
    meta_lr: float = 1e-3
    joint_iters: int = 3000
    joint_batch: int = 8
    adapt_lr: float = 1e-3
    #: Adam rates chosen among on validation with λ (empty: ``adapt_lr`` alone)
    rates: tuple[float, ...] = ()
    budgets: tuple[int, ...] = (0, 10, 50, 100, 200, 500)
    val_steps: int = 200
    weights: tuple[float, ...] = (0.1, 1.0, 10.0)
    check_every: int = 10
    check_stride: int = 8
    eval_stride: int = 1
    hidden: tuple[int, ...] = (64, 64, 64)


def rate_grid(size: Size) -> tuple[float, ...]:
    """The test-time Adam rates validation chooses among."""
    return size.rates or (size.adapt_lr,)


FULL = Size()
SMOKE = Size(train_tasks=8, val_tasks=2, test_tasks=2, train_query=50, n_ic=16, n_bc=8,
             train_colloc=32, test_colloc=64, meta_iters=4, meta_batch=2, inner_steps=1,
             joint_iters=10, joint_batch=4, budgets=(0, 5, 10), val_steps=5, weights=(1.0,),
             check_every=5, check_stride=16, eval_stride=8, hidden=(16, 16))


@dataclasses.dataclass(frozen=True)
class Setup:
    """One family's protocol: the varied parameter, its bands, the IC rule and the BC.

    ``regime``: the family regime generated (its box, narrowed to a band of ``param``
    by the store's bounds; :attr:`fixed`: the other parameters its box holds constant,
    recorded in the output). ``boundary``: ``"dirichlet"`` (u = 0 at both ends: IC/BC support set of
    :func:`scimeta.train.pinn.ic_bc_support`) or ``"periodic"`` (IC points from the
    family's rule on its grid, periodic pairs in the physics term).
    """

    family: str
    regime: str
    rule: str
    param: str
    symbol: str
    train: tuple[float, float]
    val: tuple[float, float]
    splits: dict[str, tuple[float, float]]
    boundary: str

    @property
    def fixed(self) -> tuple[tuple[str, float], ...]:
        """(name, value) of the parameters the regime's box fixes (low == high)."""
        box = get(self.family).regime(self.regime).box or {}
        return tuple((k, float(lo)) for k, (lo, hi) in box.items()
                     if k != self.param and lo == hi)

    @property
    def column(self) -> int:
        return get(self.family).param_names.index(self.param)

    @property
    def box(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """((t0, t1), (x_lo, x_hi)) of the family."""
        fam = get(self.family)
        (lo, hi), = fam.domain.values()
        grid = fam.time
        return ((float(grid.t0), float(grid.t1)), (float(lo), float(hi)))

    @property
    def n_params(self) -> int:
        return len(get(self.family).params)


SETUPS = {
    # ν log-uniform; the classic regime keeps u0 = −sin(πx), whose odd periodic solution
    # has u(±1, t) = 0 (family docstring)
    "burgers": Setup("burgers", "classic", "minus-sine", "nu", "ν", (0.1, 1.0), (0.07, 0.1),
                     {"extrapolate": (0.04, 0.07), "interpolate": (0.2, 0.3)}, "dirichlet"),
    # ε log-uniform, λ_AC = 1, u0 = x² cos(πx), periodic. At λ_AC = 1 the central
    # phase (u0 > 0 on |x| < 1/2) survives to t = 1 for ε ≲ 0.2 and is dissolved for
    # ε ≳ 0.3: the interpolation band [0.2, 0.3) holds that transition; extrapolation
    # goes to thinner interfaces (and a stronger central phase) than any training ε.
    # (λ_AC = 5, the classic benchmark's rate, left every init near relative L2 1 after
    # 500 steps: docs/meta-pinn.md.)
    "allen_cahn": Setup("allen_cahn", "pinn-x2cos", "x2cos", "eps", "ε", (0.1, 0.5),
                        (0.07, 0.1), {"extrapolate": (0.05, 0.07),
                                      "interpolate": (0.2, 0.3)},
                        "periodic"),
}


def make_store(setup: Setup, path: Path, band: tuple[float, float], tasks: int, seed: int,
               query: int) -> Path:
    """Generate a store of ``setup`` with its parameter in ``band`` and validate it."""
    cfg = GenerationConfig(setup.family, setup.regime, tasks=tasks, seed=seed, support=10,
                           query=query, bounds=((setup.param, band[0], band[1]),))
    generate(cfg, path, overwrite=True)
    problems = validate(path)
    if problems:
        raise SystemExit(f"{path}: store failed validation: {problems}")
    reader = TaskReader(path, in_memory=True)
    reader.check_data()
    return path


class Problem:
    """A family's IC/BC for one size: the support set, the boundary pairs, the physics
    loss and the collocation points."""

    def __init__(self, setup: Setup, size: Size, slope: bool = True) -> None:
        self.setup = setup
        self.slope = slope  # periodic: whether the u_x jump enters the boundary term
        self.box = setup.box
        (_, t1), (lo, hi) = self.box
        self.pairs: torch.Tensor | None = None
        if setup.boundary == "dirichlet":
            self.ic_bc = ic_bc_support(size.n_ic, size.n_bc, t_end=t1, x_lo=lo, x_hi=hi)
        elif setup.boundary == "periodic":
            self.ic_bc = initial_support(get(setup.family), setup.rule, size.n_ic)
            self.pairs = periodic_pairs(size.n_bc, t1, lo, hi)
        else:
            raise ValueError(f"unknown boundary {setup.boundary!r}")

    def physics(self, weight: float, scale: list[float], extra: int = 0) -> PhysicsLoss:
        if self.pairs is None:
            return PhysicsLoss(self.setup.family, weight, "inner", scale=scale,
                               extra_inputs=extra)
        return PeriodicPhysicsLoss(self.setup.family, weight, "inner", scale=scale,
                                   extra_inputs=extra, pairs=len(self.pairs) // 2,
                                   slope=self.slope)

    def collocation(self, rng: np.random.Generator, n_tasks: int, n: int) -> torch.Tensor:
        cx = uniform_collocation(rng, n_tasks, n, self.box)
        return cx if self.pairs is None else with_pairs(cx, self.pairs)


def build_model(extra: int, hidden: Sequence[int], seed: int,
                box: tuple[tuple[float, float], tuple[float, float]]) -> nn.Module:
    """MLP (t, x[, p̃]) -> u, tanh, inputs mapped to [−1, 1] by a fixed affine map."""
    torch.manual_seed(seed)
    net = CoordinateMLP(2 + extra, 1, hidden=tuple(hidden), activation="tanh")
    lo = [box[0][0], box[1][0], *[-1.0] * extra]
    hi = [box[0][1], box[1][1], *[1.0] * extra]
    return Rescaled(net, lo, hi, [0.0], [1.0])


def grid_inputs(time_: np.ndarray, x: np.ndarray, stride: int) -> tuple[torch.Tensor, np.ndarray]:
    """Inputs ``[T * X', 2]`` of the (t, x[::stride]) grid and the x indices."""
    xi = np.arange(0, len(x), stride)
    tt, xx = np.meshgrid(time_, x[xi], indexing="ij")
    return torch.as_tensor(np.stack([tt.ravel(), xx.ravel()], 1), dtype=torch.float32), xi


class Evaluator:
    """Relative L2 of batched adapted parameters over a grid of the tasks' reference fields."""

    def __init__(self, model: nn.Module, reader: TaskReader, tasks: Sequence[int], stride: int,
                 cond: torch.Tensor | None) -> None:
        x, xi = grid_inputs(reader.meta.time, reader.meta.space[0], stride)
        self.x = x
        self.ref = torch.stack([torch.as_tensor(reader.fields(i)[:, xi, :].reshape(-1, 1),
                                                dtype=torch.float32) for i in tasks])
        self.model = model
        self.cond = cond  # [B, P] scaled parameters for the conditioned network, or None

    def inputs(self, i: int, part: slice) -> torch.Tensor:
        x = self.x[part]
        if self.cond is None:
            return x
        return torch.cat([x, self.cond[i].expand(len(x), -1)], 1)

    def __call__(self, fast: dict[str, torch.Tensor]) -> torch.Tensor:
        out = []
        chunk = 32768
        for i in range(self.ref.shape[0]):
            p = {n: v[i] for n, v in fast.items()}
            preds = [torch.func.functional_call(self.model, p,
                                                (self.inputs(i, slice(s, s + chunk)),))
                     for s in range(0, len(self.x), chunk)]
            out.append(relative_l2(torch.cat(preds), self.ref[i]))
        return torch.stack(out)
