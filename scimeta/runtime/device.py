"""Checking a device name against what this machine and this torch build can use."""

from __future__ import annotations

import re

import torch

from ..errors import ConfigError

ALLOWED = "auto, cpu, cuda, cuda:N, mps"


def check_device(name: object, what: str = "run.device") -> torch.device:
    """The torch device for ``name``, or a :class:`ConfigError` saying why it cannot be
    used here (unknown name, no CUDA in this build or on this machine, no such GPU)."""
    if not isinstance(name, str) or not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", name):
        raise ConfigError(f"{what} = {name!r} is not a device scimeta runs on; allowed: "
                          f"{ALLOWED}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "this torch build has no CUDA" if torch.version.cuda is None else \
                "no CUDA device is visible"
            raise ConfigError(f"{what} = {name!r} but {build}; use 'cpu' or 'auto'")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(f"{what} = {name!r} but this machine has {count} CUDA "
                              f"device(s) (cuda:0 to cuda:{count - 1})")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{what} = {name!r} but MPS is not available here; use 'cpu' or "
                          "'auto'")
    return device
