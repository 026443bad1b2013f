"""Argument and data checks for the meta-learners; every failure is a ConfigError."""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Real

import torch
from torch import nn
from torch.func import functional_call

from ..batch import TaskBatch
from ..errors import ConfigError


def check_positive(name: str, value: object, finite: bool = False) -> float:
    """A real number > 0 (learning rates); with ``finite`` also < inf."""
    if isinstance(value, bool) or not isinstance(value, Real) or not float(value) > 0 or (
            finite and not math.isfinite(float(value))):
        what = "a finite number > 0" if finite else "a number > 0"
        raise ConfigError(f"{name}={value!r} is not allowed; it must be {what}")
    return float(value)


def check_nonneg_float(name: str, value: object) -> float:
    """A finite real number >= 0 (0 switches an option off)."""
    if isinstance(value, bool) or not isinstance(value, Real) or not (
            float(value) >= 0 and math.isfinite(float(value))):
        raise ConfigError(f"{name}={value!r} is not allowed; it must be a finite number "
                          ">= 0 (0: off)")
    return float(value)


def check_nonneg_int(name: str, value: object) -> int:
    """An int >= 0 (step counts)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name}={value!r} is not allowed; it must be an int >= 0")
    return value


def check_chunk_size(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"chunk_size={value!r} is not allowed; use None or an int >= 1")
    return value


def check_step_weights(weights: object, multi_step_loss: bool,
                       steps: int) -> tuple[float, ...] | None:
    """MAML++ per-step query-loss weights: ``steps`` numbers >= 0 (default uniform)."""
    if not multi_step_loss:
        if weights is not None:
            raise ConfigError("step_weights is only used with multi_step_loss=True")
        return None
    if steps < 1:
        raise ConfigError("multi_step_loss=True needs inner_steps >= 1, got 0")
    if weights is None:
        return (1.0 / steps,) * steps
    try:
        w = tuple(float(v) for v in weights)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        w = ()
    if len(w) != steps or any(not v >= 0 for v in w):
        raise ConfigError(f"step_weights={weights!r} must hold inner_steps={steps} "
                          "numbers >= 0")
    return w


def check_rank(name: str, x: object, rank: int, what: str) -> torch.Tensor:
    """A tensor of the given rank (``what`` names the expected layout)."""
    if not isinstance(x, torch.Tensor):
        raise ConfigError(f"{name} must be a torch.Tensor {what}, got {type(x).__name__}")
    if x.dim() != rank:
        raise ConfigError(
            f"{name} has shape {tuple(x.shape)} (rank {x.dim()}); expected rank {rank} {what}"
        )
    return x


def check_task(support_x: object, support_y: object) -> None:
    """One task's support set: x ``[K, d_in]``, y ``[K, d_out]`` with equal K."""
    sx = check_rank("support_x", support_x, 2, "[K, d_in]")
    sy = check_rank("support_y", support_y, 2, "[K, d_out]")
    if sx.shape[0] != sy.shape[0]:
        raise ConfigError(
            f"support_x has {sx.shape[0]} points but support_y has {sy.shape[0]}"
        )


def check_batch(batch: object, need_physics: bool) -> TaskBatch:
    """Ranks and matching sizes of a :class:`TaskBatch`."""
    if not isinstance(batch, tuple) or len(batch) < 4:
        raise ConfigError(f"batch must be a TaskBatch, got {type(batch).__name__}")
    b = batch if isinstance(batch, TaskBatch) else TaskBatch(*batch)
    shapes = {}
    for field, layout in (("support_x", "[B, K, d_in]"), ("support_y", "[B, K, d_out]"),
                          ("query_x", "[B, Q, d_in]"), ("query_y", "[B, Q, d_out]")):
        shapes[field] = check_rank(f"batch.{field}", getattr(b, field), 3, layout).shape
    n_tasks = shapes["support_x"][0]
    for field, s in shapes.items():
        if s[0] != n_tasks:
            raise ConfigError(f"batch.{field} has {s[0]} tasks but batch.support_x has {n_tasks}")
    for kind in ("support", "query"):
        nx, ny = shapes[f"{kind}_x"][1], shapes[f"{kind}_y"][1]
        if nx != ny:
            raise ConfigError(f"batch.{kind}_x has {nx} points per task but {kind}_y has {ny}")
    if shapes["query_x"][2] != shapes["support_x"][2]:
        raise ConfigError(
            f"batch.query_x has d_in={shapes['query_x'][2]} but support_x has "
            f"d_in={shapes['support_x'][2]}"
        )
    if shapes["query_y"][2] != shapes["support_y"][2]:
        raise ConfigError(
            f"batch.query_y has d_out={shapes['query_y'][2]} but support_y has "
            f"d_out={shapes['support_y'][2]}"
        )
    if need_physics:
        if b.collocation_x is None or b.params is None:
            missing = "batch.collocation_x" if b.collocation_x is None else "batch.params"
            raise ConfigError(f"{missing} is None but a physics loss is configured; "
                              "the batch needs collocation points and task parameters")
        c = check_rank("batch.collocation_x", b.collocation_x, 3, "[B, C, d_in]").shape
        p = check_rank("batch.params", b.params, 2, "[B, P]").shape
        if c[0] != n_tasks or p[0] != n_tasks:
            raise ConfigError(f"batch.collocation_x/params have {c[0]}/{p[0]} tasks, "
                              f"batch.support_x has {n_tasks}")
        if c[2] != shapes["support_x"][2]:
            raise ConfigError(f"batch.collocation_x has d_in={c[2]} but support_x has "
                              f"d_in={shapes['support_x'][2]}")
    return b


def dry_run(model: nn.Module, params: Mapping[str, torch.Tensor], x: torch.Tensor,
            y: torch.Tensor, what: str = "support") -> None:
    """Call the model on one point of ``x`` and compare with ``y``'s trailing shape.

    x ``[..., d_in]`` and y ``[..., d_out]`` (leading dims are dropped). A failure of
    the model itself (e.g. a first layer expecting another input width) is wrapped
    into a ConfigError that names the offending shapes.
    """
    point = x.reshape(-1, x.shape[-1])[:1].detach()
    plain = {k: v.detach() for k, v in params.items()}
    try:
        with torch.no_grad():
            out = functional_call(model, plain, (point,))
    except (RuntimeError, ValueError, IndexError) as exc:
        dtypes = sorted({str(v.dtype).removeprefix("torch.") for v in plain.values()})
        raise ConfigError(
            f"the model cannot be called on {what}_x of shape {tuple(x.shape)} (d_in="
            f"{x.shape[-1]}, dtype {str(x.dtype).removeprefix('torch.')}; parameters are "
            f"{'/'.join(dtypes)}): {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(out, torch.Tensor):
        raise ConfigError(f"the model must return a tensor, got {type(out).__name__}")
    if out.shape[1:] != y.shape[x.dim() - 1:]:
        raise ConfigError(
            f"the model maps {what}_x {tuple(x.shape)} to outputs of trailing shape "
            f"{tuple(out.shape[1:])} but {what}_y has shape {tuple(y.shape)}"
        )
