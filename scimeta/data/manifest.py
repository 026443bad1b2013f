"""Standard datasets: build every split of a dataset folder and check its manifest.

A dataset folder holds ``config.toml``::

    name = "oscillator-v1"
    family = "oscillator"
    support = 10
    query = 100
    [splits.train]
    regime = "train"
    tasks = 2000
    seed = 0

and, once built, ``manifest.json`` with two kinds of sha256: ``files`` (the bytes of
each ``<split>.h5`` as built: for integrity of copies) and ``content`` (per variable
of the stored arrays: reproducible by anyone who regenerates the split, since the
timestamp and git revision in the attributes are excluded).
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from pathlib import Path

import h5py

from ..errors import ConfigError, StoreError
from . import schema
from .generate import GenerationConfig, generate

CONTENT_VARS = (schema.FIELD, "params", "seed", "status", "support_idx", "query_idx")
_SPLIT_KEYS = {"regime", "tasks", "seed", "support", "query", "sampling"}
_TOP_KEYS = {"name", "family", "support", "query", "sampling", "description", "splits"}


def load_config(folder: str | os.PathLike) -> dict:
    """Read and check ``folder/config.toml`` (unknown keys are errors)."""
    path = Path(folder) / "config.toml"
    if not path.exists():
        raise ConfigError(f"dataset folder {str(folder)!r} has no config.toml")
    with open(path, "rb") as fh:
        try:
            cfg = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    unknown = set(cfg) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)}; allowed {sorted(_TOP_KEYS)}")
    for name, split in cfg.get("splits", {}).items():
        bad = set(split) - _SPLIT_KEYS
        if bad:
            raise ConfigError(f"{path}: split {name!r} has unknown key(s) {sorted(bad)}; "
                              f"allowed {sorted(_SPLIT_KEYS)}")
    if not cfg.get("splits"):
        raise ConfigError(f"{path}: no [splits.*] tables")
    return cfg


def split_configs(cfg: dict) -> dict[str, GenerationConfig]:
    """One :class:`GenerationConfig` per split of a dataset config."""
    out = {}
    for name, split in cfg["splits"].items():
        out[name] = GenerationConfig(
            family=cfg["family"], regime=split["regime"], tasks=int(split["tasks"]),
            seed=int(split.get("seed", 0)),
            support=int(split.get("support", cfg.get("support", 10))),
            query=int(split.get("query", cfg.get("query", 100))),
            sampling=split.get("sampling", cfg.get("sampling", "random")),
        )
    return out


def content_hashes(path: str | os.PathLike) -> dict[str, str]:
    """sha256 of each stored array's bytes (C order, stored dtype)."""
    out = {}
    try:
        with h5py.File(path, "r") as f:
            for var in CONTENT_VARS:
                out[var] = hashlib.sha256(f[var][...].tobytes()).hexdigest()
    except (OSError, KeyError) as exc:
        raise StoreError(f"cannot hash {str(path)!r}: {exc}") from None
    return out


def file_hash(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def build(folder: str | os.PathLike, workers: int = 1, overwrite: bool = False) -> Path:
    """Generate every split into ``folder/<split>.h5`` and write ``manifest.json``."""
    folder = Path(folder)
    cfg = load_config(folder)
    configs = split_configs(cfg)
    for c in configs.values():
        c.resolve()  # every split checked before any work
    manifest = {"name": cfg.get("name", folder.name), "files": {}, "content": {}}
    for name, c in configs.items():
        out = folder / f"{name}.h5"
        generate(c, out, workers=workers, resume=not overwrite, overwrite=overwrite)
        manifest["files"][out.name] = file_hash(out)
        manifest["content"][out.name] = content_hashes(out)
    tmp = folder / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, folder / "manifest.json")
    return folder / "manifest.json"


def check(folder: str | os.PathLike) -> list[str]:
    """Differences between the built splits and ``manifest.json`` (content hashes)."""
    folder = Path(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    problems = []
    for fname, expected in manifest["content"].items():
        path = folder / fname
        if not path.exists():
            problems.append(f"{fname}: missing (run `scimeta dataset build {folder}`)")
            continue
        got = content_hashes(path)
        problems += [f"{fname}: {var} differs from the manifest" for var in expected
                     if got.get(var) != expected[var]]
    return problems
