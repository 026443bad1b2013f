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

and ``manifest.json``, committed with it, holding the ``content`` sha256 of each
split: one per stored array (:data:`CONTENT_VARS`, bytes in C order and stored dtype).
Content hashes are reproducible: anyone who regenerates a split gets the same ones,
since the attributes (timestamp, git revision, library versions) are left out. Hashes
of the files' bytes are not: HDF5 files embed creation times, so every build has new
ones. The manifest therefore records content hashes only (older manifests may still
carry a ``files`` table; it is ignored), and :func:`file_hash` is there for checking a
copy of one particular file against its source.

:func:`build` generates the missing splits and verifies them against an existing
manifest without rewriting it, so building a committed dataset leaves the checkout
clean; it writes the manifest only when there is none yet or when asked
(``update_manifest=True``, ``scimeta dataset build --update-manifest``).
:func:`check` compares the built splits with the manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import h5py

from ..errors import ConfigError, StoreError
from ..runtime.atomic import write_json
from ..runtime.config import load_toml
from ..runtime.names import safe_name
from . import schema
from .generate import GenerationConfig, generate

CONTENT_VARS = (schema.FIELD, "params", "seed", "status", "support_idx", "query_idx", "y0")
#: content variables a store may lack (see ``schema.OPTIONAL_VARS``)
OPTIONAL_CONTENT = tuple(schema.OPTIONAL_VARS)
_SPLIT_KEYS = {"regime", "tasks", "seed", "support", "query", "sampling", "dtype",
               "compression", "solver_preset"}
_TOP_KEYS = {"name", "family", "support", "query", "sampling", "description", "splits",
             "dtype", "compression", "solver_preset"}


def load_config(folder: str | os.PathLike) -> dict:
    """Read and check ``folder/config.toml`` (unknown keys are errors)."""
    path = Path(folder) / "config.toml"
    if not Path(folder).is_dir():
        raise ConfigError(f"dataset folder {str(folder)!r} is not a directory")
    if not path.exists():
        raise ConfigError(f"dataset folder {str(folder)!r} has no config.toml")
    cfg = load_toml(path)
    unknown = set(cfg) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)}; allowed {sorted(_TOP_KEYS)}")
    if not isinstance(cfg.get("splits", {}), dict):
        raise ConfigError(f"{path}: splits must be tables [splits.NAME]")
    if not isinstance(cfg.get("family"), str):
        raise ConfigError(f"{path}: family = {cfg.get('family')!r}; expected the name of a "
                          "task family (a string)")
    for name, split in cfg.get("splits", {}).items():
        safe_name(name, f"{path}: split name")  # it becomes the file NAME.h5
        if not isinstance(split, dict):
            raise ConfigError(f"{path}: split {name!r} must be a table [splits.{name}]")
        bad = set(split) - _SPLIT_KEYS
        if bad:
            raise ConfigError(f"{path}: split {name!r} has unknown key(s) {sorted(bad)}; "
                              f"allowed {sorted(_SPLIT_KEYS)}")
        lacking = [k for k in ("regime", "tasks") if k not in split]
        if lacking:
            raise ConfigError(f"{path}: split {name!r} needs {' and '.join(lacking)}")
    if not cfg.get("splits"):
        raise ConfigError(f"{path}: no [splits.*] tables")
    return cfg


def split_configs(cfg: dict) -> dict[str, GenerationConfig]:
    """One :class:`GenerationConfig` per split of a dataset config."""
    out = {}
    for name, split in cfg["splits"].items():
        out[name] = GenerationConfig(
            family=cfg["family"], regime=split["regime"], tasks=split["tasks"],
            seed=split.get("seed", 0),
            support=split.get("support", cfg.get("support", 10)),
            query=split.get("query", cfg.get("query", 100)),
            sampling=split.get("sampling", cfg.get("sampling", "random")),
            dtype=split.get("dtype", cfg.get("dtype", "float32")),
            compression=split.get("compression", cfg.get("compression", "gzip")),
            solver_preset=split.get("solver_preset", cfg.get("solver_preset", "accurate")),
        )
    return out


def content_hashes(path: str | os.PathLike) -> dict[str, str]:
    """sha256 of each stored array's bytes (C order, stored dtype)."""
    out = {}
    try:
        with h5py.File(path, "r") as f:
            for var in CONTENT_VARS:
                if var in OPTIONAL_CONTENT and var not in f:
                    continue  # written by older scimeta versions without it
                out[var] = hashlib.sha256(f[var][...].tobytes()).hexdigest()
    except (OSError, KeyError) as exc:
        raise StoreError(f"cannot hash {str(path)!r}: {exc}") from None
    return out


def file_hash(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (differs between builds; see the module docstring)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def build(folder: str | os.PathLike, workers: int = 1, overwrite: bool = False,
          update_manifest: bool = False) -> Path:
    """Generate every split into ``folder/<split>.h5``; return the manifest's path.

    Splits already built are kept (``overwrite=True`` regenerates them). An existing
    ``manifest.json`` is verified, not rewritten: a split whose content differs raises
    :class:`StoreError`, unless ``update_manifest=True`` records the new hashes. A
    folder without a manifest gets one.
    """
    folder = Path(folder)
    cfg = load_config(folder)
    configs = split_configs(cfg)
    for name, c in configs.items():  # every split checked before any work
        try:
            c.resolve()
        except ConfigError as exc:
            raise type(exc)(f"{folder / 'config.toml'}: split {name!r}: {exc}") from None
    path = folder / "manifest.json"
    expected = None if update_manifest or not path.exists() else _load(folder)
    content = {}
    for name, c in configs.items():
        out = folder / f"{name}.h5"
        generate(c, out, workers=workers, resume=not overwrite, overwrite=overwrite)
        content[out.name] = content_hashes(out)
    if expected is not None:
        problems = _differences(expected, content)
        if problems:
            raise StoreError(f"{folder}: built splits differ from manifest.json ("
                             + "; ".join(problems) + "); pass update_manifest=True to "
                             "record the new hashes")
        return path
    manifest = {"name": cfg.get("name", folder.name), "content": content}
    try:
        write_json(path, manifest, sort_keys=True)
    except OSError as exc:
        raise StoreError(f"cannot write {str(path)!r} ({exc.strerror})") from None
    return path


def check(folder: str | os.PathLike) -> list[str]:
    """Differences between the built splits and ``manifest.json`` (content hashes)."""
    folder = Path(folder)
    expected = _load(folder)
    problems = []
    for fname, hashes in expected.items():
        if not (folder / fname).exists():
            problems.append(f"{fname}: missing (run `scimeta dataset build {folder}`)")
            continue
        problems += _differences({fname: hashes}, {fname: content_hashes(folder / fname)})
    return problems


def _load(folder: Path) -> dict[str, dict[str, str]]:
    """The ``content`` table of ``folder/manifest.json``."""
    path = folder / "manifest.json"
    try:
        return json.loads(path.read_text())["content"]
    except FileNotFoundError:
        raise StoreError(f"{str(path)!r} does not exist; build the dataset first") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"{str(path)!r} is not a dataset manifest ({exc!r})") from None


def _differences(expected: dict[str, dict[str, str]],
                 got: dict[str, dict[str, str]]) -> list[str]:
    out = [f"{fname}: not in the manifest" for fname in got if fname not in expected]
    out += [f"{fname}: not built" for fname in expected if fname not in got]
    for fname, hashes in got.items():
        out += [f"{fname}: {var} differs from the manifest"
                for var in expected.get(fname, {}) if hashes.get(var) != expected[fname][var]]
    return out
