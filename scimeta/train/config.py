"""Training configuration: TOML tables -> frozen dataclasses.

Example ``run.toml``::

    [data]
    train = "train.h5"
    [data.validation]          # held-out regimes evaluated during training
    test-extrapolate = "test-extrapolate.h5"

    [model]
    hidden = [64, 64]
    activation = "tanh"

    [meta]
    algorithm = "maml"         # scimeta.meta.learner_names("algorithm")
    inner_lr = 0.01
    inner_steps = 5
    meta_batch = 25

    [optim]
    lr = 0.001
    iterations = 2000

    [run]
    seed = 0
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from ..errors import ConfigError
from ..runtime.config import from_dict, load_toml
from ..runtime.names import safe_name


@dataclass(frozen=True)
class DataConfig:
    train: str
    #: regime label -> store path, evaluated every ``run.validate_every`` iterations
    validation: dict[str, str] = field(default_factory=dict)
    in_memory: bool = True
    n_collocation: int = 0


@dataclass(frozen=True)
class ModelConfig:
    hidden: tuple[int, ...] = (64, 64)
    activation: Literal["tanh", "silu", "relu", "sine"] = "tanh"
    fourier_features: int = 0
    fourier_scale: float = 1.0
    #: M > 0: each spatial input of a PDE family (periodic domains) enters as
    #: sin/cos(2π k x / L), k = 1..M, with L the domain's length, so the surrogate is
    #: periodic in x as the solutions are; time passes through (run.json ``periods``)
    periodic_modes: int = 0
    #: d > 0: a trained context vector [d] enters the first layer beside the inputs (the
    #: code the ``cavia`` learner adapts alone in its inner loop)
    context_dim: int = 0
    #: fixed affine maps around the network (scimeta.nn.Rescaled): "outputs" scales
    #: each state channel by its spread over the training store, "both" also maps the
    #: inputs to [-1, 1] over the grid box. "none" by default: on the oscillator
    #: (t in [0, 10] s) the raw time input gives a tanh network the higher-frequency
    #: features adaptation needs (measured: query MSE ratio to random 0.42 raw vs 0.79
    #: with both maps, 1500 iterations); families whose states are far from unit
    #: scale (Lorenz) need "outputs". With "outputs" or "both" the losses and the
    #: reported MSEs are in units of each channel's spread (dimensionless), so the
    #: stable inner rate no longer depends on the family's units.
    normalize: Literal["none", "outputs", "both"] = "none"


@dataclass(frozen=True)
class MetaConfig:
    #: a learner of role "algorithm" in the registry (``scimeta.meta.learner_names``)
    algorithm: str = "maml"
    inner_lr: float = 0.01
    inner_steps: int = 5
    meta_batch: int = 25
    chunk_size: int = 0
    #: weight λ of the equation residual at collocation points (0: data only)
    physics_weight: float = 0.0
    physics_where: Literal["inner", "outer", "both"] = "inner"
    #: divide the residual of each channel by the spread of its dy/dt over the training
    #: store (run.json ``norm.dydt_scale``), so one physics_weight serves every family
    physics_normalize: bool = True
    #: clip each task's inner gradient to this Euclidean norm (0: off); steadies an
    #: inner loop whose physics term is much stiffer than the data misfit
    inner_grad_clip: float = 0.0
    #: ``torch.compile`` the hand-batched meta-loss (MAML(compile=True)): faster per
    #: iteration after a compile of seconds to minutes; learners or models without a
    #: hand-batched path train eagerly (a warning says so)
    compile: bool = False
    #: the meta-learned init is compared against these (learners of role "baseline"),
    #: trained on the same data
    baselines: tuple[str, ...] = ("fomaml", "joint")


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-3
    iterations: int = 2000
    grad_clip: float = 0.0
    #: the outer rate over a phase: "constant" (``lr`` throughout) or "cosine" (``lr``
    #: annealed to 0 over ``iterations``: lr · (1 + cos(π i / iterations)) / 2 at step i)
    schedule: Literal["constant", "cosine"] = "constant"


@dataclass(frozen=True)
class RunConfig:
    seed: int = 0
    device: str = "auto"
    dtype: Literal["float32", "float64"] = "float32"
    checkpoint_every: int = 200
    #: keep the parameters every this many iterations in RUN_DIR/snapshots (0: none);
    #: ``scimeta diagnose`` reads them to follow meta-overfitting over training
    snapshot_every: int = 0
    validate_every: int = 200
    #: the init a phase writes: its last iterate, or ("best-validation") the validated
    #: iterate with the least mean validation MSE (stopping chosen on data.validation)
    keep: Literal["last", "best-validation"] = "last"
    log_every: int = 50
    deterministic: bool = False


@dataclass(frozen=True)
class TrainConfig:
    data: DataConfig
    model: ModelConfig = field(default_factory=ModelConfig)
    meta: MetaConfig = field(default_factory=MetaConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self) -> None:
        m, o, r = self.meta, self.optim, self.run
        checks = [
            (m.inner_lr > 0, f"meta.inner_lr must be > 0, got {m.inner_lr}"),
            (m.inner_steps >= 0, f"meta.inner_steps must be >= 0, got {m.inner_steps}"),
            (m.meta_batch >= 1, f"meta.meta_batch must be >= 1, got {m.meta_batch}"),
            (m.chunk_size >= 0, f"meta.chunk_size must be >= 0, got {m.chunk_size}"),
            (m.physics_weight >= 0, f"meta.physics_weight must be >= 0, got {m.physics_weight}"),
            (m.inner_grad_clip >= 0 and math.isfinite(m.inner_grad_clip),
             f"meta.inner_grad_clip must be a finite number >= 0, got {m.inner_grad_clip}"),
            (o.lr > 0, f"optim.lr must be > 0, got {o.lr}"),
            (o.iterations >= 0, f"optim.iterations must be >= 0, got {o.iterations}"),
            (o.grad_clip >= 0, f"optim.grad_clip must be >= 0, got {o.grad_clip}"),
            (r.seed >= 0, f"run.seed must be >= 0, got {r.seed}"),
            (r.snapshot_every >= 0, f"run.snapshot_every must be >= 0, got {r.snapshot_every}"),
            (min(r.checkpoint_every, r.validate_every, r.log_every) >= 1,
             "run.checkpoint_every, validate_every and log_every must be >= 1"),
            (self.model.periodic_modes >= 0 and self.model.fourier_features >= 0,
             "model.periodic_modes and model.fourier_features must be >= 0, got "
             f"{self.model.periodic_modes} and {self.model.fourier_features}"),
            (not (self.model.periodic_modes and self.model.fourier_features),
             "model.periodic_modes and model.fourier_features exclude each other, got "
             f"{self.model.periodic_modes} and {self.model.fourier_features}; set one to 0"),
            (len(self.model.hidden) >= 1 and all(h >= 1 for h in self.model.hidden),
             f"model.hidden must list one or more positive layer widths, got "
             f"{list(self.model.hidden)} (an empty list would be a linear model)"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)
        for label in self.data.validation:  # labels become file names (evaluation/LABEL.nc)
            safe_name(label, "data.validation label")
        from ..meta import get_learner  # torch: only when a config is built

        get_learner(m.algorithm, "algorithm", "for meta.algorithm")
        for b in m.baselines:
            get_learner(b, "baseline", "in meta.baselines")
        if r.keep == "best-validation" and not self.data.validation:
            raise ConfigError("run.keep = 'best-validation' needs data.validation: at least "
                              "one held-out store to choose the stopping iteration on")
        if m.physics_weight > 0 and self.data.n_collocation < 1:
            raise ConfigError("meta.physics_weight > 0 needs data.n_collocation >= 1")


def load_train_config(path: str) -> TrainConfig:
    """Read a training config file (TOML) with every key checked."""
    return from_dict(TrainConfig, load_toml(path), "config")
