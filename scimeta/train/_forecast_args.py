"""Argument checks of :mod:`scimeta.train.forecast`: the model, its parameter dicts
(shared, or stacked per environment) and the trajectory tensors, each refused with
the argument's name, value and what is allowed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from ..errors import ConfigError
from ..nn import Forecaster

Params = dict[str, torch.Tensor]


def check_model(model: object) -> Forecaster:
    if not isinstance(model, Forecaster):
        raise ConfigError(f"model={type(model).__name__} is not allowed; give a "
                          "scimeta.nn.Forecaster")
    return model


def own_params(model: Forecaster, params: Mapping[str, torch.Tensor] | None) -> Params:
    ref = dict(model.named_parameters())
    if params is None:
        return {k: v.detach() for k, v in ref.items()}
    missing = sorted(set(ref) - set(params))
    if missing:
        raise ConfigError(f"params lacks the model parameter(s) {missing}; "
                          f"expected keys: {sorted(ref)}")
    return {k: params[k] for k in ref}


def stacked_of(model: Forecaster, params: Params, n_env: int) -> dict[str, bool]:
    """Per entry: True when it carries a leading environment axis of size E."""
    ref = dict(model.named_parameters())
    out = {}
    for k, v in params.items():
        extra = v.dim() - ref[k].dim()
        if extra not in (0, 1) or (extra == 1 and v.shape[0] != n_env) or (
                v.shape[extra:] != ref[k].shape):
            raise ConfigError(f"params[{k!r}] has shape {tuple(v.shape)}; expected the "
                              f"model's {tuple(ref[k].shape)}, or stacked over the E={n_env} "
                              "environments")
        out[k] = extra == 1
    return out


def names_of(model: Forecaster, arg: str, names: Sequence[str] | None,
             default: Sequence[str]) -> list[str]:
    known = [n for n, _ in model.named_parameters()]
    if names is None:
        return list(default)
    if isinstance(names, str):
        names = [names]
    bad = [n for n in names if n not in known]
    if bad:
        raise ConfigError(f"{arg}={list(names)!r} names unknown parameter(s) {bad}; "
                          f"allowed: {', '.join(known)}")
    return list(names)


def check_data(model: Forecaster, y0: torch.Tensor,
               target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """y0 ``[E, N, S]`` and target ``[E, N, T, S]`` (or ``[E, N, T*S]``) -> target 4-d."""
    if y0.dim() != 3:
        raise ConfigError(f"y0 must be [E, N, S] (environments, trajectories, state), "
                          f"got shape {tuple(y0.shape)}")
    e, n, s = y0.shape
    t = model.t.shape[0]
    if target.dim() == 3 and target.shape == (e, n, t * s):
        target = target.reshape(e, n, t, s)
    if target.shape != (e, n, t, s):
        raise ConfigError(f"target must be [E, N, T, S] = {[e, n, t, s]} or [E, N, T*S] "
                          f"(T = {t} times of the model's grid), got {list(target.shape)}")
    return y0, target
