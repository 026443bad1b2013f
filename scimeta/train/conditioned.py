"""The parameter-conditioned baseline: a surrogate of (coordinates, physical parameters).

At test time a new regime's physical parameters are known, so the strongest
reference a meta-learned init must beat is a network trained jointly on the
inputs ``(t[, x, y], p_1 … p_P)``: it can answer a new task zero-shot. Here it is
the learner :class:`~scimeta.meta.Conditioned` (trained exactly like ``joint``: pooled
support and query MSE, no inner loop) on batches whose inputs carry each task's
parameters, scaled to [-1, 1] by the training store's parameter box
(:func:`param_box`, saved with the run as ``norm.p_lo`` / ``norm.p_hi``). The seam
is a batch transform (:func:`condition_batch`, :class:`ConditionedReader`); the
model is the run's CoordinateMLP with ``P`` more inputs.

Limits: no physics term — the residual takes input derivatives in the columns
``t`` and space only, so a parameter column would need its own handling (future
work); parameters outside the training box map outside [-1, 1] on purpose
(extrapolation is what is being measured), never clipped. Its network has another
input width than the run's other inits, so only ``scimeta evaluate`` scores it;
adaptation to measurements, posteriors and landscapes refuse it
(:func:`refuse_conditioned`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import torch
from torch import nn

from ..batch import TaskBatch
from ..data import TaskReader
from ..errors import ConfigError
from ..typing import Indices
from .config import TrainConfig
from .models import build_model

if TYPE_CHECKING:
    from .decoder import DecoderReader

CONDITIONED = "conditioned"
#: the initial-state decoder (:mod:`.decoder`): parameters and initial-state code as inputs
DECODER = "decoder"
#: inits whose networks take more inputs than the coordinates (scored by evaluate only)
WIDE_INITS = (CONDITIONED, DECODER)


def param_box(reader: Any) -> tuple[list[float], list[float]]:
    """(lo, hi), each ``[P]``: per parameter the min and max over the ok tasks of
    ``reader`` (``reader.params`` is ``[n_tasks, P]``). A degenerate column (hi == lo,
    e.g. a forcing F = 0 in unforced regimes) gets hi = lo + 1, so it maps to -1."""
    p = np.asarray(reader.params, dtype=np.float64)
    if p.ndim != 2 or not len(p):
        raise ConfigError(f"reader.params has shape {p.shape}; need [n_tasks >= 1, P]")
    lo, hi = p.min(0), p.max(0)
    hi = np.where(hi > lo, hi, lo + 1.0)
    return [float(v) for v in lo], [float(v) for v in hi]


def condition_batch(batch: TaskBatch, lo: Sequence[float], hi: Sequence[float]) -> TaskBatch:
    """``batch`` with each task's parameters appended to its inputs.

    ``support_x`` ``[B, K, d_in]`` and ``query_x`` ``[B, Q, d_in]`` become
    ``[B, K, d_in + P]`` and ``[B, Q, d_in + P]``: the original columns unchanged,
    then ``batch.params`` ``[B, P]`` mapped by ``2 (p − lo) / (hi − lo) − 1`` (the box,
    rounded to the batch's dtype, maps to [-1, 1]; a parameter outside it maps
    outside, unclipped), the same for every point of a task. ``collocation_x``
    ``[B, N, d_in]``, when present, is widened the same way: the baseline trains
    without a physics term, but may adapt with one at test time (the residual
    differentiates in the coordinate columns only; :class:`~scimeta.meta.PhysicsLoss`
    ``extra_inputs``).
    """
    p = batch.params
    n = len(lo)
    if p is None or p.ndim != 2 or p.shape[1] != n or len(hi) != n:
        shape = None if p is None else tuple(p.shape)
        raise ConfigError(f"batch.params has shape {shape}; the parameter box has "
                          f"{n} lower and {len(hi)} upper ends: need params [B, {n}] and a "
                          "box of one (lo, hi) per parameter")
    lo_t = torch.as_tensor(lo, dtype=p.dtype, device=p.device).double()
    hi_t = torch.as_tensor(hi, dtype=p.dtype, device=p.device).double()
    width = hi_t - lo_t
    width = torch.where(width > 0, width, torch.ones_like(width))
    return append_columns(batch, (2.0 * (p.double() - lo_t) / width - 1.0).to(p.dtype))


def append_columns(batch: TaskBatch, cols: torch.Tensor) -> TaskBatch:
    """``batch`` with each task's ``cols`` ``[B, k]`` appended to every point's inputs:
    ``support_x``, ``query_x`` and, when present, ``collocation_x`` gain k columns."""

    def widen(x: torch.Tensor) -> torch.Tensor:
        c = cols.to(dtype=x.dtype, device=x.device)[:, None, :]
        return torch.cat([x, c.expand(x.shape[0], x.shape[1], c.shape[-1])], dim=-1)

    cx = batch.collocation_x
    return batch._replace(support_x=widen(batch.support_x), query_x=widen(batch.query_x),
                          collocation_x=None if cx is None else widen(cx))


class ConditionedReader:
    """A :class:`~scimeta.data.TaskReader` whose batches are conditioned
    (:func:`condition_batch` with the box ``lo``, ``hi``); ``in_dim`` is ``d_in + P``.

    Task sampling is the wrapped reader's (same generator → same indices), and every
    other attribute (``meta``, ``params``, ``tasks``, ``out_dim``, ``path``, …) is
    delegated to it.
    """

    def __init__(self, reader: TaskReader, lo: Sequence[float], hi: Sequence[float]) -> None:
        n = int(np.asarray(reader.params).shape[1])
        if len(lo) != n or len(hi) != n:
            raise ConfigError(f"the parameter box has {len(lo)} lower and {len(hi)} upper "
                              f"ends; {str(reader.path)!r} has {n} parameters: need one "
                              "(lo, hi) per parameter")
        self.reader = reader
        self.lo, self.hi = [float(v) for v in lo], [float(v) for v in hi]

    def __getattr__(self, name: str) -> Any:
        if name == "reader" or "reader" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.reader, name)

    def __len__(self) -> int:
        return len(self.reader)

    @property
    def in_dim(self) -> int:
        """Coordinates plus parameters: ``d_in + P``."""
        return self.reader.in_dim + len(self.lo)

    @property
    def out_dim(self) -> int:
        return self.reader.out_dim

    def sample_indices(self, batch_size: int, generator: np.random.Generator) -> np.ndarray:
        """The wrapped reader's draw, ``[batch_size]``."""
        return self.reader.sample_indices(batch_size, generator)

    def batch(self, indices: Indices) -> TaskBatch:
        """The conditioned batch of the given ok-task indices (inputs ``[B, N, d_in + P]``)."""
        return condition_batch(self.reader.batch(indices), self.lo, self.hi)

    def sample(self, batch_size: int, generator: np.random.Generator) -> TaskBatch:
        return self.batch(self.sample_indices(batch_size, generator))


Source: TypeAlias = "TaskReader | ConditionedReader | DecoderReader"


def box_of(info: Mapping[str, Any]) -> tuple[list[float], list[float]]:
    """The training parameter box ``(p_lo, p_hi)`` saved in a run's ``info["norm"]``; a
    run created before the conditioned baseline existed lacks it (a ConfigError)."""
    norm = info.get("norm") or {}
    if "p_lo" not in norm or "p_hi" not in norm:
        raise ConfigError(f"meta.baselines includes {CONDITIONED!r}, but this run's run.json "
                          "has no parameter box (norm.p_lo, norm.p_hi; runs created before "
                          "the conditioned baseline lack it): train it in a new run directory")
    return list(norm["p_lo"]), list(norm["p_hi"])


def check_box(phases: Iterable[str], info: Mapping[str, Any]) -> None:
    """Raise before any training if a phase is ``conditioned`` or ``decoder`` and ``info``
    has no box (or, for ``decoder``, no code dimension)."""
    names = set(phases)
    if names & set(WIDE_INITS):
        box_of(info)
    if DECODER in names:
        from .decoder import code_dim

        code_dim(info)


def phase_model(cfg: TrainConfig, info: Mapping[str, Any], name: str) -> nn.Module:
    """The network phase ``name`` trains, from the run's saved ``info``: ``in_dim``
    inputs, plus ``P`` for ``conditioned``, plus ``P + C`` for ``decoder`` (its code,
    :mod:`.decoder`), seeded with ``run.seed``."""
    extra = 0
    if name in WIDE_INITS:
        extra = len(box_of(info)[0])
    if name == DECODER:
        from .decoder import code_dim

        extra += code_dim(info)
    return build_model(cfg, info["in_dim"], info["out_dim"], info["norm"], cfg.run.seed,
                       extra_inputs=extra, periods=info.get("periods"))


def phase_setup(cfg: TrainConfig, info: Mapping[str, Any], name: str, reader: TaskReader,
                val: Mapping[str, TaskReader]) -> tuple[nn.Module, Source, dict[str, Source]]:
    """(model, training reader, validation readers) of phase ``name``: for
    ``conditioned`` the wider network and readers wrapped in :class:`ConditionedReader`
    (validation regimes scaled by the training box); otherwise unchanged."""
    model = phase_model(cfg, info, name)
    if name == DECODER:
        from .decoder import decoder_readers

        train, others = decoder_readers(info, reader, val)
        wrapped: dict[str, Source] = dict(others)
        return model, train, wrapped
    if name != CONDITIONED:
        return model, reader, dict(val)
    lo, hi = box_of(info)
    return (model, ConditionedReader(reader, lo, hi),
            {k: ConditionedReader(r, lo, hi) for k, r in val.items()})


def conditioned_model(cfg: TrainConfig, info: Mapping[str, Any], device: torch.device | str,
                      dtype: torch.dtype) -> nn.Module:
    """The network of ``inits/conditioned.pt`` (``d_in + P`` inputs), untrained, on
    ``device`` in ``dtype``; load the init's parameters into it (or pass them to a
    learner built on it)."""
    return phase_model(cfg, info, CONDITIONED).to(device=device, dtype=dtype)


def condition_batches(batches: Iterable[TaskBatch], info: Mapping[str, Any]) -> list[TaskBatch]:
    """Every batch conditioned with the run's training box (:func:`condition_batch`)."""
    lo, hi = box_of(info)
    return [condition_batch(b, lo, hi) for b in batches]


def refuse_conditioned(init: str | None, argument: str = "init",
                       allowed: Sequence[str] = ()) -> None:
    """Raise a ConfigError if ``init`` is ``conditioned`` or ``decoder`` (for commands
    that use the run's coordinate-only network: adapt, posterior, landscape, diagnose)."""
    if init not in WIDE_INITS:
        return
    rest = f"; use one of: {', '.join(allowed)}" if allowed else ""
    what = ("the parameter-conditioned baseline takes each task's physical parameters"
            if init == CONDITIONED else "the initial-state decoder takes each task's "
            "physical parameters and initial-state code")
    raise ConfigError(f"{argument}={init!r} is not allowed here: {what} as extra inputs and "
                      f"is evaluated by `scimeta evaluate` only{rest}")


__all__ = ["CONDITIONED", "DECODER", "WIDE_INITS", "ConditionedReader", "Source",
           "append_columns", "box_of", "check_box", "condition_batch", "condition_batches",
           "conditioned_model", "param_box", "phase_model", "phase_setup", "refuse_conditioned"]
