"""A flat view of selected entries of a functional parameter dict.

Curvatures, precisions and covariances of :mod:`scimeta.bayes` are matrices over
one flat vector of P entries: the selected parameter tensors, in the model's
``named_parameters`` order, each flattened row-major (``Tensor.reshape(-1)``).
:class:`Flat` records the names, shapes and offsets and maps a dict to the
vector and back; leading batch (task) dimensions are kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from ..typing import Params, ParamsLike


@dataclass(frozen=True)
class Flat:
    """The layout of a flat parameter vector: ``names[i]`` holds ``shapes[i]``.

    ``flatten({name: [*lead, *shape]}) -> [*lead, P]`` and ``unflatten`` inverts it.
    """

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    @classmethod
    def of_model(cls, model: nn.Module, names: Iterable[str] | None = None) -> Flat:
        """The layout of ``names`` (default: every parameter) in ``model``'s order.

        Raises :class:`~scimeta.errors.ConfigError` naming any unknown name.
        """
        ref = dict(model.named_parameters())
        if names is None:
            chosen = list(ref)
        else:
            wanted = list(names)
            unknown = [n for n in wanted if n not in ref]
            if unknown:
                raise ConfigError(f"names={unknown!r} are not parameters of the model; "
                                  f"known: {', '.join(ref)}")
            chosen = [n for n in ref if n in set(wanted)]
        if not chosen:
            raise ConfigError("names selects no parameter; give at least one parameter name")
        return cls(tuple(chosen), tuple(tuple(ref[n].shape) for n in chosen))

    @property
    def sizes(self) -> tuple[int, ...]:
        """Number of entries of each tensor."""
        out = []
        for s in self.shapes:
            n = 1
            for d in s:
                n *= d
            out.append(n)
        return tuple(out)

    @property
    def offsets(self) -> tuple[int, ...]:
        """Start of each tensor in the flat vector."""
        out, start = [], 0
        for n in self.sizes:
            out.append(start)
            start += n
        return tuple(out)

    @property
    def numel(self) -> int:
        """P, the length of the flat vector."""
        return sum(self.sizes)

    def slice(self, name: str) -> slice:
        """Where tensor ``name`` lies in the flat vector."""
        i = self.names.index(name)
        return slice(self.offsets[i], self.offsets[i] + self.sizes[i])

    def flatten(self, params: ParamsLike) -> torch.Tensor:
        """``[*lead, P]`` from a dict whose selected entries are ``[*lead, *shape]``."""
        missing = [n for n in self.names if n not in params]
        if missing:
            raise ConfigError(f"params lacks {missing}; it must hold every selected name")
        parts = []
        for n, s in zip(self.names, self.shapes, strict=True):
            v = params[n]
            lead = v.shape[: v.dim() - len(s)]
            if tuple(v.shape[v.dim() - len(s):]) != s:
                raise ConfigError(f"params[{n!r}] has shape {tuple(v.shape)}; "
                                  f"expected [..., {', '.join(map(str, s))}]")
            parts.append(v.reshape(*lead, -1))
        return torch.cat(parts, dim=-1)

    def unflatten(self, vec: torch.Tensor) -> Params:
        """The dict of the selected tensors from a vector ``[*lead, P]``."""
        if vec.shape[-1] != self.numel:
            raise ConfigError(f"vector has {vec.shape[-1]} entries; expected P={self.numel}")
        lead = vec.shape[:-1]
        return {n: vec[..., o:o + k].reshape(*lead, *s)
                for n, s, o, k in zip(self.names, self.shapes, self.offsets, self.sizes,
                                      strict=True)}

    def group_index(self) -> torch.Tensor:
        """``[P]`` long tensor: the index in :attr:`names` of each flat entry."""
        return torch.repeat_interleave(torch.arange(len(self.names)),
                                       torch.tensor(self.sizes))


def split_params(params: ParamsLike, flat: Flat, model: nn.Module) -> Params:
    """The model parameters of ``params`` that are not in ``flat`` (held fixed)."""
    ref = {n for n, _ in model.named_parameters()}
    return {k: v for k, v in params.items() if k in ref and k not in flat.names}


__all__ = ["Flat", "split_params"]
