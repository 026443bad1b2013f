"""The initial-state decoder baseline: a surrogate of (coordinates, parameters, initial state).

A task of a periodic PDE family is fixed by its physical parameters and its initial
field; when the family draws that field from a finite basis (a 1-D
:class:`~scimeta.initial_fields.SineSeries`: ``offset + sum_m a_m sin(2 pi m x / L) +
b_m cos(...)``, :func:`~.sysid_pde.initial_basis`), its ``C`` coefficients — the task's
*code* — are a handful of numbers. The decoder is the run's network with the inputs
``(t, x, p_1 … p_P, c_1 … c_C)``: parameters scaled to [-1, 1] by the training box
(as the :mod:`parameter-conditioned <.conditioned>` baseline), the code divided by the
basis' bound (so ``|c| <= 1``). It trains like ``joint`` (pooled MSE, no inner loop) on
*whole fields*: beside each task's support and query points, every step draws
:data:`DECODER_POINTS` random grid points of the task's solved field (seeded from the
phase's generator, so a resumed or distributed run draws the same points). A training
task's code is read exactly off its stored field at the first time (projection on the
basis; the periodic grid makes it exact, checked to 1e-4 relative).

At test time the parameters are known and the initial state is not: the code becomes a
parameter of the network (:class:`CodedField`, ``context`` ``[C]``, zeros — the mean
of the random-phase coefficients — at first), fitted to the support points. Its own
rule (``learned``; CAVIA's) adapts the code alone; every other optimizer adapts either
the code alone or — its first :data:`CODE_STEPS` steps on the code alone and on the
data misfit alone, then the code and every weight on the optimizer's loss
(``adapt_curve(first=..., first_learner=...)``) — as validation chooses, with or
without the equation's residual (``+physics``), as the other inits. Evaluated by
``scimeta evaluate`` only (like ``conditioned``: adapt, posterior and landscape refuse it).

It comes from a Burgers probe (``bench/burgers_autodecoder.py``); on Burgers' test
tasks inside the training box it reaches 0.20× the random init's query error and
0.16× the joint net's after 50 L-BFGS steps with the residual, with another training
seed 0.34× and 0.33× (docs/results.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..batch import TaskBatch
from ..data import TaskReader
from ..data.sampling import grid_inputs
from ..errors import ConfigError
from ..family import ProblemFamily
from ..typing import Indices
from .conditioned import ConditionedReader, append_columns, box_of, condition_batch
from .sysid_pde import InitialBasis, initial_basis, spectral_family

#: random grid points of each task's solved field added to every training step
DECODER_POINTS = 512
#: test-time steps that fit the code alone before every weight adapts with it (on
#: Burgers' validation band 20 did better than 10: 0.302 against 0.327)
CODE_STEPS = 20
#: largest relative misfit of a store's first-time field to its basis projection
_PROJECTION_TOL = 1e-4


def decoder_basis(family: ProblemFamily, reader: TaskReader) -> InitialBasis:
    """The basis the regime of ``reader``'s store draws its initial fields from; a
    ConfigError when the family has none or the field is known (nothing to decode)."""
    regime = family.regimes.get(reader.meta.regime)
    try:
        basis = initial_basis(spectral_family(family), regime)
    except ConfigError as exc:
        raise ConfigError(f"the 'decoder' baseline needs a periodic spectral PDE family "
                          f"whose initial fields come from a finite basis ({exc})") from None
    if not len(basis.basis):
        raise ConfigError(f"{str(reader.path)!r}: regime {reader.meta.regime!r} has a known "
                          "initial field, so a task has no code to decode; the "
                          "'conditioned' baseline covers this case")
    grid = tuple(len(s) for s in reader.meta.space)
    if basis.offset.shape[:-1] != grid:
        raise ConfigError(f"{str(reader.path)!r}: spatial grid {grid} differs from family "
                          f"{family.name!r}'s {basis.offset.shape[:-1]}")
    return basis


def initial_codes(reader: TaskReader, basis: InitialBasis) -> np.ndarray:
    """Each ok task's code ``[n_tasks, C]``: the coefficients of its field at the store's
    first time on ``basis``, divided by ``basis.bound`` (so within [-1, 1]).

    Raises a ConfigError when a field is not in the basis' span (relative misfit above
    1e-4): the store's first time is then not a drawn initial state."""
    n_basis = len(basis.basis)
    mat = basis.basis.reshape(n_basis, -1).T  # [S*C, n_basis]
    u0 = np.stack([np.asarray(reader.fields(i)[0], np.float64) for i in range(len(reader))])
    u0 = u0.reshape(len(reader), -1) - basis.offset.reshape(1, -1)
    coef, *_ = np.linalg.lstsq(mat, u0.T, rcond=None)  # [n_basis, n_tasks]
    misfit = np.linalg.norm(u0 - (mat @ coef).T, axis=1)
    size = np.maximum(np.linalg.norm(u0, axis=1), 1e-12)
    worst = int(np.argmax(misfit / size))
    rel = misfit[worst] / size[worst]
    if rel > _PROJECTION_TOL:
        raise ConfigError(f"{str(reader.path)!r}: task {int(reader.tasks[worst])}'s field at "
                          f"t = {float(reader.meta.time[0]):g} is {rel:.2g} "
                          "(relative) off the span of its regime's initial basis: the store's "
                          "first time is not a drawn initial state, so it has no code")
    return coef.T / basis.bound


def decoder_info(family: ProblemFamily, reader: TaskReader) -> dict[str, Any]:
    """What a run saves to rebuild the decoder: ``code_dim`` (C) and ``code_bound``."""
    basis = decoder_basis(family, reader)
    return {"code_dim": len(basis.basis), "code_bound": float(basis.bound)}


def code_dim(info: Mapping[str, Any]) -> int:
    """C from a run's ``info["decoder"]``; a ConfigError for a run saved without it."""
    saved = info.get("decoder") or {}
    if "code_dim" not in saved:
        raise ConfigError("meta.baselines includes 'decoder', but this run's run.json has no "
                          "'decoder' entry (runs created without the decoder lack it): train "
                          "it in a new run directory")
    return int(saved["code_dim"])


class DecoderReader(ConditionedReader):
    """A :class:`~scimeta.data.TaskReader` whose batches carry each task's parameters
    (scaled by the box ``lo``, ``hi``, as :class:`~.conditioned.ConditionedReader`'s)
    and code as input columns: inputs ``[B, N, d_in + P + C]``.

    With ``points > 0`` (training) the query set of every batch drawn after
    :meth:`sample_indices` also holds ``points`` random grid points of each task's field,
    seeded by ``(a number drawn from the generator, task)``; the fields are cached in
    memory (float32) as they are first read. Every other attribute is the wrapped
    reader's.
    """

    def __init__(self, reader: TaskReader, lo: Sequence[float], hi: Sequence[float],
                 codes: np.ndarray, points: int = 0) -> None:
        super().__init__(reader, lo, hi)  # checks the box
        codes = np.asarray(codes, dtype=np.float64)
        if codes.ndim != 2 or len(codes) != len(reader):
            raise ConfigError(f"codes has shape {codes.shape}; need [{len(reader)}, C]: one "
                              "code per ok task")
        if isinstance(points, bool) or not isinstance(points, int) or points < 0:
            raise ConfigError(f"points={points!r} is not allowed; it must be an int >= 0")
        self.codes, self.points = codes, points
        self._draw: int | None = None
        self._grid = grid_inputs(reader.meta.time, list(reader.meta.space))
        self._fields: dict[int, np.ndarray] = {}

    @property
    def in_dim(self) -> int:
        """Coordinates, parameters and code: ``d_in + P + C``."""
        return super().in_dim + self.codes.shape[1]

    def sample_indices(self, batch_size: int, generator: np.random.Generator) -> np.ndarray:
        """The wrapped reader's draw ``[batch_size]``; with ``points``, also the seed of
        the field points of the next :meth:`batch`, drawn from ``generator``."""
        idx = self.reader.sample_indices(batch_size, generator)
        if self.points:
            self._draw = int(generator.integers(2 ** 62))
        return idx

    def _field(self, i: int) -> np.ndarray:
        if i not in self._fields:
            f = np.asarray(self.reader.fields(i), np.float32)
            self._fields[i] = f.reshape(len(self._grid), -1)
        return self._fields[i]

    def batch(self, indices: Indices) -> TaskBatch:
        """The batch of the given ok-task indices, inputs ``[B, N, d_in + P + C]``."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        b = self.reader.batch(idx)
        if self.points and self._draw is not None:
            picks = [np.random.default_rng([self._draw, int(i)]).integers(
                0, len(self._grid), self.points) for i in idx]
            qx = np.stack([self._grid[p] for p in picks])
            qy = np.stack([self._field(int(i))[p] for i, p in zip(idx, picks, strict=True)])
            b = b._replace(
                query_x=torch.cat([b.query_x, torch.as_tensor(qx, dtype=b.query_x.dtype)], 1),
                query_y=torch.cat([b.query_y, torch.as_tensor(qy, dtype=b.query_y.dtype)], 1))
        b = condition_batch(b, self.lo, self.hi)
        return append_columns(b, torch.as_tensor(self.codes[idx], dtype=b.support_x.dtype))


def decoder_readers(info: Mapping[str, Any], reader: TaskReader, val: Mapping[str, TaskReader]
                    ) -> tuple[DecoderReader, dict[str, DecoderReader]]:
    """The decoder phase's readers: the training store's with :data:`DECODER_POINTS` field
    points per task and step, each validation store's with its stored points only (every
    store's codes on its own regime's basis, of the run's code dimension)."""
    from .. import registry

    family = registry.get(info["family"])
    lo, hi = box_of(info)
    dim = code_dim(info)

    def wrap(r: TaskReader, points: int) -> DecoderReader:
        basis = decoder_basis(family, r)
        if len(basis.basis) != dim:
            raise ConfigError(f"{str(r.path)!r}: its regime's initial basis has "
                              f"{len(basis.basis)} functions, the run's decoder {dim}")
        return DecoderReader(r, lo, hi, initial_codes(r, basis), points)

    return wrap(reader, DECODER_POINTS), {k: wrap(r, 0) for k, r in val.items()}


class CodedField(nn.Module):
    """The decoder at test time: ``field`` (inputs ``[..., d_in + P + C]``) with its code
    as the parameter ``context`` ``[C]`` (zeros at first), appended to every input, so
    the module takes ``[..., d_in + P]`` (coordinates and scaled parameters) like the
    conditioned baseline's network, and CAVIA's rule adapts the code alone.
    ``y_scale`` is ``field``'s output spread (the normalized loss)."""

    def __init__(self, field: nn.Module, code_dim: int) -> None:
        super().__init__()
        if isinstance(code_dim, bool) or not isinstance(code_dim, int) or code_dim < 1:
            raise ConfigError(f"code_dim={code_dim!r} is not allowed; it must be an int >= 1")
        self.field = field
        self.context = nn.Parameter(torch.zeros(code_dim))

    @property
    def y_scale(self) -> torch.Tensor | None:
        scale = getattr(self.field, "y_scale", None)
        return scale if isinstance(scale, torch.Tensor) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x ``[..., d_in + P]`` -> ``[..., out_dim]``."""
        code = self.context.to(x.dtype).expand(*x.shape[:-1], -1)
        return self.field(torch.cat([x, code], dim=-1))


def coded_state(trained: Mapping[str, torch.Tensor], code_dim: int) -> dict[str, torch.Tensor]:
    """The parameters of a :class:`CodedField` from a trained decoder's (``inits/decoder.pt``,
    names of the bare field network): ``field.<name>`` each, and the code ``context`` at
    zeros ``[code_dim]`` (the mean of the family's random-phase coefficients)."""
    state = {f"field.{k}": v for k, v in trained.items()}
    state["context"] = torch.zeros(code_dim)
    return state


__all__ = ["CODE_STEPS", "DECODER_POINTS", "CodedField", "DecoderReader", "code_dim", "coded_state",
           "decoder_basis", "decoder_info", "decoder_readers", "initial_codes"]
