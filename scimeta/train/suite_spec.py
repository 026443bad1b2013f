"""Suite files: their tables, matrix expansion, the steps they plan and the units an
array job runs.

A suite file has five sections of named tables, ``[stores.NAME]`` (written to
``OUT/stores/NAME.h5``), ``[runs.NAME]`` (``OUT/runs/NAME``), ``[evaluations.NAME]``
(``OUT/runs/RUN/evaluation/NAME.nc``), ``[posteriors.NAME]``
(``OUT/runs/RUN/posterior/NAME.nc``) and ``[landscapes.NAME]``
(``OUT/runs/RUN/landscape/NAME.nc``; :mod:`.suite_analysis`), and optionally a
``[matrix]`` of axes that template tables expand over (:mod:`.suite_matrix`). A
store path in a run config (``data.train``, ``data.validation``) or an analysis
(``test``, ``validation``) that names a store of the suite means that store.

A *unit* is one run with every evaluation, posterior and landscape of it, and the
stores they read: the independent piece of work one SLURM array task runs
(``--array-index I``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..runtime.config import from_dict, load_toml
from ..runtime.names import safe_name
from .suite_analysis import ANALYSES, LandscapeSpec, PosteriorSpec, check_analyses, output
from .suite_matrix import check_axes, expand


@dataclass(frozen=True)
class StoreSpec:
    """A store of the suite: the fields of :class:`~scimeta.data.GenerationConfig` in
    their TOML form (``bounds`` a table, ``exclude`` a list of tables), plus
    ``shards``."""

    family: str
    regime: str
    tasks: int
    seed: int = 0
    support: int = 10
    query: int = 100
    #: support/query sampling rule (``scimeta.data.sampling.RULES``)
    sampling: str = "random"
    #: dtype of the stored fields (float32 or float64)
    dtype: str = "float32"
    #: parameter bound overrides ``name -> [low, high]``
    bounds: dict[str, tuple[float, ...]] = field(default_factory=dict)
    #: filter of the stored fields: gzip, lzf or none
    compression: str = "gzip"
    #: "accurate" (the family's solver) or "published" (RK45 at scipy's defaults)
    solver_preset: str = "accurate"
    #: boxes cut out of the regime, each a table ``name -> [low, high]`` (closed)
    exclude: tuple[dict[str, tuple[float, ...]], ...] = ()
    #: generate in this many shards (one after the other) and merge them
    shards: int = 1


@dataclass(frozen=True)
class RunSpec:
    #: a run.toml path (relative to the suite file) or an inline run.toml table
    config: str | dict[str, Any]
    #: a table merged into the config, key by key (e.g. ``{meta = {algorithm = "fomaml"}}``)
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EvaluationSpec:
    run: str
    test: str
    validation: str | None = None
    budgets: tuple[int, ...] = (0, 1, 5, 10)
    optimizers: tuple[str, ...] = ("sgd", "adam")
    max_tasks: int | None = None
    select_budget: int | None = None
    #: λ grid of the ``+physics`` optimizers (scimeta.train.evaluate)
    physics_weights: tuple[float, ...] = (1.0, 0.1, 0.01, 10.0)
    n_collocation: int = 64
    backtrack: str = "physics"
    reference: str | None = None
    #: the decoder's first-stage lengths, chosen on validation (scimeta.train.evaluate)
    code_steps: tuple[int, ...] = (20,)


@dataclass(frozen=True)
class SuiteSpec:
    stores: dict[str, StoreSpec] = field(default_factory=dict)
    runs: dict[str, RunSpec] = field(default_factory=dict)
    evaluations: dict[str, EvaluationSpec] = field(default_factory=dict)
    posteriors: dict[str, PosteriorSpec] = field(default_factory=dict)
    landscapes: dict[str, LandscapeSpec] = field(default_factory=dict)

    def analyses(self) -> dict[str, dict[str, Any]]:
        """Step kind (``evaluation``, ``posterior``, ``landscape``) -> its tables."""
        return {"evaluation": self.evaluations, "posterior": self.posteriors,
                "landscape": self.landscapes}


@dataclass(frozen=True)
class Step:
    """One unit of work: ``kind`` (store, run, evaluation, posterior, landscape), its
    name, its output and the ``kind:name`` of the steps it needs."""

    kind: str
    name: str
    output: Path
    needs: tuple[str, ...]

    @property
    def id(self) -> str:
        """``kind:name``."""
        return f"{self.kind}:{self.name}"


@dataclass(frozen=True)
class Unit:
    """What one array task runs: run ``name``, its evaluations, posteriors and landscapes
    and the stores they need
    (``steps``, in dependency order); ``index`` is its 0-based array index."""

    index: int
    name: str
    steps: tuple[Step, ...]


def load_suite(path: str | os.PathLike) -> SuiteSpec:
    """Read and check a suite file (every key; names through ``safe_name``), expanding
    its ``[matrix]`` templates.

    Args:
        path: the suite TOML file.

    Returns:
        The parsed suite; a one-line :class:`ConfigError` naming the key otherwise.
    """
    # [report] is read by `scimeta report` (scimeta.report), not by the runner
    raw = {k: v for k, v in load_toml(path).items() if k != "report"}
    if "matrix" in raw:
        raw = expand({k: v for k, v in raw.items() if k != "matrix"},
                     check_axes(raw["matrix"]))
    spec = from_dict(SuiteSpec, raw, "suite")
    tables: list[tuple[str, dict[str, Any]]] = [("stores", spec.stores), ("runs", spec.runs)]
    tables += [(f"{k}s", t) for k, t in spec.analyses().items()]
    for kind, table in tables:
        for name in table:
            safe_name(name, f"{kind} name")
    for name, s in spec.stores.items():
        if s.shards < 1:
            raise ConfigError(f"stores.{name}.shards must be >= 1, got {s.shards}")
        for key in (k for k, b in s.bounds.items() if len(b) != 2):
            raise ConfigError(f"stores.{name}.bounds.{key}: expected [low, high]")
        for i, box in enumerate(s.exclude):
            for key in (k for k, b in box.items() if len(b) != 2):
                raise ConfigError(f"stores.{name}.exclude[{i}].{key}: expected [low, high]")
    for kind, table in spec.analyses().items():
        for name, e in table.items():
            if e.run not in spec.runs:
                raise ConfigError(f"{kind}s.{name}.run = {e.run!r} is not a run of the suite "
                                  f"(runs: {', '.join(spec.runs) or 'none'})")
    check_analyses(spec.posteriors, spec.landscapes)
    return spec


def store_ref(value: str, spec: SuiteSpec, out: Path, base: Path) -> tuple[str, str | None]:
    """(path, store name or None): a suite store's name means its file in ``out``."""
    if value in spec.stores:
        return str(out / "stores" / f"{value}.h5"), value
    p = Path(value)
    return str(p if p.is_absolute() or p.exists() else base / p), None


def _merge(into: dict, over: dict) -> dict:
    """``into`` with ``over``'s keys set, tables merged recursively."""
    out = dict(into)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k),
                                                                          dict) else v
    return out


def run_config(name: str, spec: SuiteSpec, out: Path, base: Path) -> tuple[Any, Path, list]:
    """The run's checked TrainConfig with suite store names replaced by paths, its
    folder, and the stores it reads (``store:NAME``)."""
    from .config import TrainConfig

    raw = spec.runs[name].config
    where = base
    if isinstance(raw, str):
        cpath = Path(raw) if Path(raw).is_absolute() else base / raw
        raw, where = load_toml(cpath), cpath.parent
    raw = _merge(json.loads(json.dumps(raw)), spec.runs[name].overrides)
    data = raw.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("train"), str):
        raise ConfigError(f"runs.{name}.config.data.train: a store name or path is required")
    val = data.get("validation", {})
    refs = [(data, "train"), *((val, k) for k in (val if isinstance(val, dict) else {}))]
    needs: list[str | None] = []
    for table, key in refs:
        if isinstance(table[key], str):
            table[key], dep = store_ref(table[key], spec, out, where)
            needs.append(dep)
    cfg = from_dict(TrainConfig, raw, f"runs.{name}.config")
    return cfg, where, [f"store:{d}" for d in needs if d]


def plan(spec: SuiteSpec, out: Path, base: Path) -> list[Step]:
    """Every step of the suite in dependency order.

    Args:
        spec: the parsed suite.
        out: the output folder.
        base: the suite file's folder (relative paths).

    Returns:
        Stores, then runs, then evaluations, posteriors and landscapes.
    """
    steps = [Step("store", n, out / "stores" / f"{n}.h5", ()) for n in spec.stores]
    steps += [Step("run", n, out / "runs" / n, tuple(run_config(n, spec, out, base)[2]))
              for n in spec.runs]
    for kind, table in spec.analyses().items():
        for n, e in table.items():
            reads = (e.test, getattr(e, "validation", None))
            needs = [f"run:{e.run}"] + [f"store:{v}" for v in reads if v in spec.stores]
            steps.append(Step(kind, n, output(kind, out, e.run, n), tuple(needs)))
    return steps


def select(steps: list[Step], only: list[str] | None) -> list[Step]:
    """The steps named in ``only`` (``NAME`` matches every kind, ``kind:NAME`` one) and
    the steps they need, in plan order; every step when ``only`` is empty."""
    if not only:
        return steps
    by_id = {s.id: s for s in steps}
    keep: set[str] = set()
    todo = []
    for n in only:
        found = [sid for sid, s in by_id.items() if n in (s.name, sid)]
        if not found:
            raise ConfigError(f"only: {n!r} is not a step of the suite (steps: "
                              f"{', '.join(by_id)})")
        todo.extend(found)
    while todo:  # a chosen step brings its dependencies
        sid = todo.pop()
        if sid not in keep:
            keep.add(sid)
            todo.extend(by_id[sid].needs)
    return [s for s in steps if s.id in keep]


def units(steps: list[Step]) -> list[Unit]:
    """The suite's units in plan order: one per run, with its evaluations, posteriors
    and landscapes and the stores they need."""
    out: list[Unit] = []
    for s in (s for s in steps if s.kind == "run"):
        evals = [e.id for e in steps if e.kind in ANALYSES and s.id in e.needs]
        out.append(Unit(len(out), s.name, tuple(select(steps, [s.id, *evals]))))
    return out


def pick_unit(all_units: list[Unit], index: str | int,
              environ: dict[str, str] | None = None) -> Unit:
    """Unit ``index`` (0-based), or with ``"auto"`` the one of this SLURM array task
    (``SLURM_ARRAY_TASK_ID`` minus ``SLURM_ARRAY_TASK_MIN``, default 0)."""
    env = os.environ if environ is None else environ
    n = len(all_units)
    if index == "auto":
        try:
            i = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", 0))
        except KeyError:
            raise ConfigError("array_index='auto' needs SLURM_ARRAY_TASK_ID (run it as a "
                              f"SLURM job array, e.g. sbatch --array=0-{max(n - 1, 0)}) or "
                              "give the index") from None
        except ValueError:
            raise ConfigError("array_index='auto': SLURM_ARRAY_TASK_ID is not an "
                              "integer") from None
    else:
        try:
            i = int(index)
        except ValueError:
            raise ConfigError(f"array_index={index!r}: expected an integer or 'auto'") from None
    if not 0 <= i < n:
        allowed = f"0 to {n - 1}" if n else "none: the suite has no runs"
        raise ConfigError(f"array_index={i}: the suite has {n} unit(s) (allowed: {allowed})")
    return all_units[i]
