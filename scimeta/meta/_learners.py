"""The registry of meta-learners: every algorithm a run can name, declared once.

An entry names a learner class and its fixed options; what differs between
learners is declared on the class (``differentiable_objective``, ``rate_mode``),
not re-implemented by the code that trains them. The training configuration,
the training loop and the CLI read this registry; a lab can add its own learner
with :func:`register_learner`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ..errors import ConfigError, unknown_name
from ._maml import MAML
from ._variants import ANIL, CAVIA, Conditioned, Decoder, Joint, MAMLPlusPlus, MetaSGD, Reptile

ROLES = ("algorithm", "baseline")


@dataclass(frozen=True)
class LearnerEntry:
    """One registered learner.

    ``role`` holds ``"algorithm"`` (may be a run's ``meta.algorithm``) and/or
    ``"baseline"`` (may be listed in ``meta.baselines``).
    """

    name: str
    cls: type[MAML]
    summary: str
    options: Mapping[str, Any] = field(default_factory=dict)
    role: frozenset[str] = frozenset({"algorithm"})

    @property
    def differentiable(self) -> bool:
        """Whether the meta-gradient is the gradient of ``meta_loss`` (else a pseudo-gradient)."""
        return self.cls.differentiable_objective

    def build(self, model: nn.Module, **kwargs: Any) -> MAML:
        """The learner on ``model``; ``kwargs`` are the run's common options
        (``inner_lr``, ``inner_steps``, ``loss``, ``physics``, ``chunk_size``)."""
        return self.cls(model, **{**kwargs, **self.options})


_LEARNERS: dict[str, LearnerEntry] = {}


def register_learner(entry: LearnerEntry, *, replace: bool = False) -> LearnerEntry:
    """Add ``entry`` to the registry (``replace=True`` to override a name)."""
    if not isinstance(entry, LearnerEntry):
        raise ConfigError(f"register_learner takes a LearnerEntry, got {type(entry).__name__}")
    if not entry.role or not entry.role <= set(ROLES):
        raise ConfigError(f"learner {entry.name!r}: role={set(entry.role)} must be a "
                          f"non-empty subset of {ROLES}")
    if entry.name in _LEARNERS and not replace:
        raise ConfigError(f"a learner named {entry.name!r} is registered already; "
                          "pass replace=True to override it")
    _LEARNERS[entry.name] = entry
    return entry


def learner_names(role: str | None = None) -> tuple[str, ...]:
    """Registered learner names in registration order (optionally only one role)."""
    if role is not None and role not in ROLES:
        raise ConfigError(f"role={role!r} is not allowed; use one of {ROLES} or None")
    return tuple(n for n, e in _LEARNERS.items() if role is None or role in e.role)


def get_learner(name: str, role: str | None = None, where: str = "") -> LearnerEntry:
    """The entry named ``name``; an unknown name (for ``role``) names the known ones."""
    known = learner_names(role)
    if name not in known:
        raise unknown_name("learner" if role is None else role, name, known, where)
    return _LEARNERS[name]


_BOTH = frozenset(ROLES)
for _entry in (
    LearnerEntry("maml", MAML, "second-order MAML, exact gradient through the inner loop "
                 "(Finn et al. 2017)"),
    LearnerEntry("fomaml", MAML, "first-order MAML: inner gradients detached",
                 {"first_order": True}, _BOTH),
    LearnerEntry("metasgd", MetaSGD, "Meta-SGD: learned per-parameter inner rates "
                 "(Li et al. 2017)"),
    LearnerEntry("anil", ANIL, "ANIL: only the last layer adapts (Raghu et al. 2020)"),
    LearnerEntry("cavia", CAVIA, "CAVIA: only the context vector adapts (Zintgraf et al. "
                 "2019); needs model.context_dim > 0"),
    LearnerEntry("mamlpp", MAMLPlusPlus, "MAML++: per-step rates, multi-step loss "
                 "(Antoniou et al. 2019)"),
    LearnerEntry("reptile", Reptile, "Reptile: pseudo-gradient θ − mean φ "
                 "(Nichol et al. 2018)"),
    LearnerEntry("joint", Joint, "joint training on pooled data, no inner loop",
                 role=frozenset({"baseline"})),
    LearnerEntry("conditioned", Conditioned, "joint training of a network whose inputs "
                 "include the task's physical parameters", role=frozenset({"baseline"})),
    LearnerEntry("decoder", Decoder, "joint training on whole fields of a network whose "
                 "inputs include the task's parameters and initial-state code; the code is "
                 "fitted at test time (periodic PDE families with a basis of initial "
                 "states)", role=_BOTH),
):
    register_learner(_entry)
