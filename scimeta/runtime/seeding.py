"""One seed for everything, and capturing/restoring every RNG state for checkpoints."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy's legacy global RNG and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - third-party code may use the legacy RNG
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def rng_state(np_rng: np.random.Generator | None = None) -> dict:
    """Every RNG state as tensors/plain types (loadable with ``weights_only=True``)."""
    state = {
        "python": _encode_python(random.getstate()),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if np_rng is not None:
        state["numpy_generator"] = _plain(np_rng.bit_generator.state)
    return state


def set_rng_state(state: dict, np_rng: np.random.Generator | None = None) -> None:
    random.setstate(_decode_python(state["python"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if np_rng is not None and "numpy_generator" in state:
        np_rng.bit_generator.state = state["numpy_generator"]


def _encode_python(st) -> dict:
    version, internal, gauss = st
    return {"version": version, "internal": torch.tensor(internal, dtype=torch.int64),
            "gauss": gauss}


def _decode_python(d: dict):
    return (d["version"], tuple(int(x) for x in d["internal"].tolist()), d["gauss"])


def _plain(obj):
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
