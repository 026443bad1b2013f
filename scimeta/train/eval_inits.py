"""The inits an evaluation compares, and the learner each adapts with per optimizer.

An init is a *contender*: its unbatched parameters, the learner of its network
(the parameter-conditioned baseline has ``P`` more inputs and conditioned batches,
:mod:`.conditioned`; the initial-state decoder too, with its code as a parameter,
:mod:`.decoder`) and, per optimizer name, the learner that adapts it:

- ``sgd``, ``adam``: the run's support loss (the data misfit, plus the run's inner
  physics term when it was trained with one);
- ``learned``: the init's own inner rule (Meta-SGD's, MAML++'s rates);
- ``sgd+physics``, ``adam+physics``: test-time physics-informed adaptation — the
  data misfit plus ``λ × mean((residual / dydt_scale)²)`` of the family's equation
  at collocation points spanning the task's whole space-time window, with the
  task's *known* parameters; the residual per channel is divided by the spread of
  ∂y/∂t over the training store (run.json ``norm.dydt_scale``), so one λ serves
  every family. λ comes from a grid, chosen with the rate on the validation store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..batch import TaskBatch
from ..errors import ConfigError
from ..family import ProblemFamily
from ..meta import MAML, RATE_PREFIX, learner_names
from ..typing import Params
from .adaptation import OPTIMIZERS
from .conditioned import (
    CONDITIONED,
    DECODER,
    WIDE_INITS,
    box_of,
    condition_batches,
    conditioned_model,
    phase_model,
)
from .config import TrainConfig
from .decoder import CODE_STEPS, CodedField, code_dim, coded_state
from .models import build_learner, build_model
from .run_dir import RunDir
from .setup import derivative_scale, load_init

#: suffix of the test-time physics-informed optimizers
PHYSICS = "+physics"
#: optimizers that may take the suffix
PHYSICS_BASES = ("sgd", "adam", "lbfgs")
#: default λ grid of the physics-informed optimizers (normalized residual); the first
#: is used when no validation store chooses
PHYSICS_WEIGHTS = (1.0, 0.1, 0.01, 10.0)
#: collocation points per task for test-time physics (uniform in the space-time box)
N_COLLOCATION = 64


def check_eval_optimizer(name: str) -> str:
    """``name`` if it is an optimizer or ``<sgd|adam|lbfgs>+physics``; ConfigError otherwise."""
    allowed = (*OPTIMIZERS, *(b + PHYSICS for b in PHYSICS_BASES))
    if name not in allowed:
        raise ConfigError(f"optimizer={name!r} is not allowed; use one of {', '.join(allowed)}")
    return name


def base_optimizer(name: str) -> str:
    """The update rule of an optimizer name: ``"adam+physics"`` -> ``"adam"``."""
    return name.removesuffix(PHYSICS)


def is_physics(name: str) -> bool:
    return name.endswith(PHYSICS)


def check_physics_weights(weights: Sequence[float]) -> tuple[float, ...]:
    """The λ grid: one or more finite numbers > 0; ConfigError otherwise."""
    w = tuple(weights)
    if not w or any(isinstance(v, bool) or not isinstance(v, int | float)
                    or not (np.isfinite(v) and v > 0) for v in w):
        raise ConfigError(f"physics_weights={weights!r} is not allowed; give one or more "
                          "finite numbers > 0 (weights of the normalized residual)")
    return tuple(float(v) for v in w)


def check_code_steps(steps: Sequence[int]) -> tuple[int, ...]:
    """The decoder's first-stage lengths to choose from: one or more distinct ints >= 0
    (0: no first stage); ConfigError otherwise."""
    s = tuple(steps)
    if not s or len(set(s)) != len(s) or any(
            isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in s):
        raise ConfigError(f"code_steps={steps!r} is not allowed; give one or more distinct "
                          "ints >= 0 (steps that fit the decoder's code alone before every "
                          "weight joins; 0: none)")
    return s


@dataclass
class Contender:
    """One init of the comparison (see the module docstring)."""

    name: str
    state: Params
    plain: MAML
    own: MAML
    conditioned: bool
    cfg: TrainConfig
    family: ProblemFamily
    norm: dict
    extra_inputs: int = 0
    #: (names, steps): adapting every parameter, the first ``steps`` steps move only
    #: ``names`` on the data misfit alone (the decoder's code,
    #: :data:`~.decoder.CODE_STEPS`); None: no first stage
    first: tuple[tuple[str, ...], int] | None = None
    _physics: dict[float, MAML] = field(default_factory=dict)

    def staged(self, names: Sequence[str] | None, optimizer: str,
               steps: int | None = None) -> dict:
        """The first-stage arguments of :func:`~.adaptation.adapt_curve` (``first``, and
        ``first_learner``: the data-only learner) when this init has a first stage and
        every parameter adapts (``names`` None) with an optimizer other than
        ``learned``; else none. ``steps``: the first stage's length (default
        ``first``'s; 0: no first stage)."""
        if not self.has_stage(names, optimizer):
            return {}
        assert self.first is not None
        n = self.first[1] if steps is None or steps < 0 else int(steps)
        return {"first": (self.first[0], n), "first_learner": self.plain}

    def has_stage(self, names: Sequence[str] | None, optimizer: str) -> bool:
        """Whether adapting ``names`` (None: every parameter) with ``optimizer`` starts
        with this init's first stage."""
        return self.first is not None and names is None and optimizer != "learned"

    def learner(self, optimizer: str, weight: float | None = None) -> MAML:
        """The learner that adapts this init with ``optimizer`` (λ = ``weight`` for the
        physics-informed ones)."""
        if optimizer == "learned":
            return self.own
        if not is_physics(optimizer):
            return self.plain
        if weight is None:
            raise ConfigError(f"optimizer {optimizer!r} needs a physics weight")
        if weight not in self._physics:
            self._physics[weight] = build_learner(
                self.cfg, self.plain.model, self.family, "maml", norm=self.norm,
                physics_weight=weight, extra_inputs=self.extra_inputs)
        return self._physics[weight]

    @property
    def inner_set(self) -> tuple[str, ...] | None:
        """The parameters this init's own learner adapts in its inner loop, when that is
        a strict subset of the model's (ANIL's head, CAVIA's context), else None."""
        adapted = tuple(self.own.loop.adapted)
        return adapted if set(adapted) < set(self.plain.names) else None

    def batches(self, batches: list[TaskBatch], info: dict) -> list[TaskBatch]:
        """``batches`` as this init's network reads them (conditioned or as they are)."""
        return condition_batches(batches, info) if self.conditioned else batches


def physics_norm(info: dict, cfg: TrainConfig) -> dict:
    """The run's ``norm`` with ``dydt_scale`` (the residual's per-channel scale); a run
    saved without it gets it from its training store, which must still exist."""
    norm = dict(info["norm"] or {})
    if cfg.meta.physics_normalize and "dydt_scale" not in norm:
        from ..data import TaskReader

        path = info.get("train_store")
        if not path:
            raise ConfigError("this run's run.json has no norm.dydt_scale nor train_store: "
                              "physics-informed optimizers cannot normalize the residual")
        norm["dydt_scale"] = derivative_scale(TaskReader(path))
    return norm


def contenders(rd: RunDir, cfg: TrainConfig, info: dict, family: ProblemFamily,
               names: Sequence[str], device: torch.device, dtype: torch.dtype,
               physics: bool) -> list[Contender]:
    """The contenders ``names`` (trained inits and ``random``), on ``device``/``dtype``.

    ``physics``: physics-informed optimizers will be used; a run saved without
    ``norm.dydt_scale`` then gets it from its training store (which must still exist).
    """
    norm = physics_norm(info, cfg) if physics else dict(info["norm"] or {})
    model = build_model(cfg, info["in_dim"], info["out_dim"], info["norm"], cfg.run.seed,
                        periods=info.get("periods"))
    model = model.to(device=device, dtype=dtype)
    # data-only optimizers adapt on the data alone, also for a run meta-trained with the
    # residual in its inner loss (its own rule, residual included, is "learned")
    plain = build_learner(cfg, model, family, "maml", norm=norm, physics_weight=0.0)
    out = []
    for name in names:
        cond = name in WIDE_INITS
        cmodel: torch.nn.Module
        if name == DECODER:
            # the code is a parameter (zeros), fitted to the support points: alone by its
            # own rule (CAVIA's), alone or with every weight by the other optimizers
            cmodel = CodedField(phase_model(cfg, info, DECODER), code_dim(info)).to(
                device=device, dtype=dtype)
            base = build_learner(cfg, cmodel, None, "maml")
            own = build_learner(cfg, cmodel, None, "cavia")
        elif cond:
            cmodel = conditioned_model(cfg, info, device, dtype)
            # trained without a physics term, it adapts on the data unless +physics
            base = build_learner(cfg, cmodel, None, "maml")
            own = build_learner(cfg, cmodel, None, CONDITIONED)
        else:
            base = plain
            algo = name if name in learner_names() and name != "random" else "maml"
            own = build_learner(cfg, model, family, algo, norm=norm)
        raw = dict(base.init_params()) if name == "random" else load_init(rd, name)
        if name == DECODER:
            raw = coded_state(raw, code_dim(info))
        state = {k: v.detach().to(device=device, dtype=dtype) for k, v in raw.items()
                 if k in base.names or k.startswith(RATE_PREFIX)}
        extra = len(box_of(info)[0]) if cond else 0  # the inputs phase_model added
        first = (("context",), CODE_STEPS) if name == DECODER else None
        out.append(Contender(name, state, base, own, cond, cfg, family, norm, extra, first))
    return out
