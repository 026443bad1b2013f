"""The step rules of batched test-time adaptation (:func:`.adaptation.adapt_curve`).

Per-task rates, Adam's update on batched parameters, the undo of a backtracking step,
and the check of a first stage (a subset adapted alone for its first steps).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..errors import ConfigError
from ..meta import MAML
from ..typing import Params

#: torch.optim.Adam's defaults
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


def task_rates(rate: float | torch.Tensor | None, b: int, ref: torch.Tensor) -> torch.Tensor:
    """The per-task rate vector ``[B]`` (a scalar rate broadcast)."""
    if rate is None:
        raise ConfigError("rate=None is only allowed with optimizer='learned'")
    r = torch.as_tensor(rate, dtype=ref.dtype, device=ref.device)
    if r.dim() == 0:
        r = r.expand(b)
    if r.shape != (b,) or not bool(torch.all(torch.isfinite(r) & (r > 0))):
        raise ConfigError(f"rate must be a number > 0 or a [B={b}] tensor of them, "
                          f"got shape {tuple(r.shape)}")
    return r


def per_task(r: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``r`` ``[B]`` viewed to broadcast against ``like`` ``[B, *shape]``."""
    return r.view(-1, *([1] * (like.dim() - 1)))


class BatchedAdam:
    """torch.optim.Adam's update (no weight decay, no amsgrad) on batched tensors."""

    def __init__(self, fast: Params, lr: torch.Tensor) -> None:
        self.lr = lr
        self.m = {n: torch.zeros_like(v) for n, v in fast.items()}
        self.v = {n: torch.zeros_like(v) for n, v in fast.items()}
        self.t = 0

    def step(self, fast: Params, g: Params) -> Params:
        b1, b2 = ADAM_BETAS
        self.t += 1
        bc1 = 1 - b1 ** self.t
        bc2 = math.sqrt(1 - b2 ** self.t)
        out = {}
        for n, p in fast.items():
            self.m[n] = self.m[n].lerp(g[n], 1 - b1)
            self.v[n] = self.v[n] * b2 + (1 - b2) * g[n] * g[n]
            denom = self.v[n].sqrt() / bc2 + ADAM_EPS
            out[n] = p - per_task(self.lr, p) / bc1 * (self.m[n] / denom)
        return out


@dataclass
class Accepted:
    """The last accepted point of a backtracking adaptation (per task, batched)."""

    fast: Params
    g: Params
    loss: torch.Tensor
    moments: tuple[Params, Params] | None

    @classmethod
    def keep(cls, fast: Params, g: Params, loss: torch.Tensor, adam: BatchedAdam | None
             ) -> Accepted:
        return cls(fast, g, loss, None if adam is None else (dict(adam.m), dict(adam.v)))

    def restore(self, fast: Params, g: Params | None, loss: torch.Tensor,
                lr: torch.Tensor, adam: BatchedAdam | None
                ) -> tuple[Params, Params | None, torch.Tensor, torch.Tensor]:
        """Undo the last step where the loss did not fall; halve those tasks' rates."""
        worse = ~torch.isfinite(loss) | (loss >= self.loss)
        if not bool(worse.any()):
            return fast, g, loss, lr

        def pick(new: Params, old: Params) -> Params:
            return {n: torch.where(per_task(worse, v), old[n], v) for n, v in new.items()}

        if adam is not None and self.moments is not None:
            adam.m, adam.v = pick(adam.m, self.moments[0]), pick(adam.v, self.moments[1])
        return (pick(fast, self.fast), None if g is None else pick(g, self.g),
                torch.where(worse, self.loss, loss), torch.where(worse, lr / 2, lr))


def first_stage(first: tuple[Sequence[str], int] | None, names: Sequence[str],
                optimizer: str, learner: MAML, first_learner: MAML | None = None
                ) -> tuple[frozenset[str], int]:
    """(the first stage's names, the step of the switch; -1: no first stage), after
    checking ``first`` and ``first_learner`` against ``names`` and ``learner``."""
    if first_learner is not None and first is None:
        raise ConfigError("first_learner is given without first=(names, steps); it "
                          "only applies to a first stage")
    if first_learner is not None and list(first_learner.names) != list(learner.names):
        raise ConfigError("first_learner must be a learner of the same model as learner "
                          f"(parameters {list(first_learner.names)} != {list(learner.names)})")
    if first is None:
        return frozenset(names), -1
    subset, steps = first
    if optimizer == "learned":
        raise ConfigError("first=... is not allowed with optimizer='learned' (its rule "
                          "adapts the learner's own set)")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ConfigError(f"first={first!r}: its step count must be an int >= 0")
    if not subset or any(n not in names for n in subset):
        raise ConfigError(f"first={first!r}: its names must be a non-empty subset of the "
                          f"adapted parameters {list(names)}")
    return frozenset(subset), steps if steps else -1
