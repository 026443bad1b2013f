"""Problem suites: stores, training runs and evaluations declared in one TOML file.

A suite file has three sections of named tables, ``[stores.NAME]`` (written to
``OUT/stores/NAME.h5``), ``[runs.NAME]`` (``OUT/runs/NAME``) and
``[evaluations.NAME]`` (``OUT/runs/RUN/evaluation/NAME.nc``); see docs/scale-out.md.
A store path in a run config (``data.train``, ``data.validation``) or an evaluation
(``test``, ``validation``) that names a store of the suite means that store. Steps run
in dependency order (stores, runs, evaluations); each resumes and a finished one is
skipped. ``OUT/suite.json`` is rewritten atomically after every step.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..runtime.config import from_dict, load_toml
from ..runtime.names import safe_name

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class StoreSpec:
    family: str
    regime: str
    tasks: int
    seed: int = 0
    support: int = 10
    query: int = 100
    #: parameter bound overrides ``name -> [low, high]``
    bounds: dict[str, tuple[float, ...]] = field(default_factory=dict)
    #: generate in this many shards (one after the other) and merge them
    shards: int = 1


@dataclass(frozen=True)
class RunSpec:
    #: a run.toml path (relative to the suite file) or an inline run.toml table
    config: str | dict[str, Any]


@dataclass(frozen=True)
class EvaluationSpec:
    run: str
    test: str
    validation: str | None = None
    budgets: tuple[int, ...] = (0, 1, 5, 10)
    optimizers: tuple[str, ...] = ("sgd", "adam")
    max_tasks: int | None = None
    select_budget: int | None = None


@dataclass(frozen=True)
class SuiteSpec:
    stores: dict[str, StoreSpec] = field(default_factory=dict)
    runs: dict[str, RunSpec] = field(default_factory=dict)
    evaluations: dict[str, EvaluationSpec] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """One unit of work: ``kind`` (store, run, evaluation), its name, its output and the
    ``kind:name`` of the steps it needs."""

    kind: str
    name: str
    output: Path
    needs: tuple[str, ...]


def load_suite(path: str | os.PathLike) -> SuiteSpec:
    """Read and check a suite file (every key; names through ``safe_name``).

    Args:
        path: the suite TOML file.

    Returns:
        The parsed suite; a one-line :class:`ConfigError` naming the key otherwise.
    """
    spec = from_dict(SuiteSpec, load_toml(path), "suite")
    for kind, table in (("stores", spec.stores), ("runs", spec.runs),
                        ("evaluations", spec.evaluations)):
        for name in table:
            safe_name(name, f"{kind} name")
    for name, s in spec.stores.items():
        if s.shards < 1:
            raise ConfigError(f"stores.{name}.shards must be >= 1, got {s.shards}")
        for key in (k for k, b in s.bounds.items() if len(b) != 2):
            raise ConfigError(f"stores.{name}.bounds.{key}: expected [low, high]")
    for name, e in spec.evaluations.items():
        if e.run not in spec.runs:
            raise ConfigError(f"evaluations.{name}.run = {e.run!r} is not a run of the suite "
                              f"(runs: {', '.join(spec.runs) or 'none'})")
    return spec


def _store_ref(value: str, spec: SuiteSpec, out: Path, base: Path) -> tuple[str, str | None]:
    """(path, store name or None): a suite store's name means its file in ``out``."""
    if value in spec.stores:
        return str(out / "stores" / f"{value}.h5"), value
    p = Path(value)
    return str(p if p.is_absolute() or p.exists() else base / p), None


def _run_config(name: str, spec: SuiteSpec, out: Path, base: Path) -> tuple[Any, Path, list]:
    """The run's checked TrainConfig with suite store names replaced by paths, its
    folder, and the stores it reads."""
    from .config import TrainConfig

    raw = spec.runs[name].config
    where = base
    if isinstance(raw, str):
        cpath = Path(raw) if Path(raw).is_absolute() else base / raw
        raw, where = load_toml(cpath), cpath.parent
    raw = json.loads(json.dumps(raw))
    data = raw.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("train"), str):
        raise ConfigError(f"runs.{name}.config.data.train: a store name or path is required")
    val = data.get("validation", {})
    refs = [(data, "train"), *((val, k) for k in (val if isinstance(val, dict) else {}))]
    needs: list[str | None] = []
    for table, key in refs:
        if isinstance(table[key], str):
            table[key], dep = _store_ref(table[key], spec, out, where)
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
        Stores, then runs, then evaluations.
    """
    steps = [Step("store", n, out / "stores" / f"{n}.h5", ()) for n in spec.stores]
    steps += [Step("run", n, out / "runs" / n, tuple(_run_config(n, spec, out, base)[2]))
              for n in spec.runs]
    for n, e in spec.evaluations.items():
        needs = [f"run:{e.run}"] + [f"store:{v}" for v in (e.test, e.validation)
                                    if v in spec.stores]
        steps.append(Step("evaluation", n, out / "runs" / e.run / "evaluation" / f"{n}.nc",
                          tuple(needs)))
    return steps


def _select(steps: list[Step], only: list[str] | None) -> list[Step]:
    if not only:
        return steps
    by_id = {f"{s.kind}:{s.name}": s for s in steps}
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
    return [s for s in steps if f"{s.kind}:{s.name}" in keep]


def is_done(step: Step, spec: SuiteSpec, out: Path, base: Path) -> bool:
    """Whether a step's output is complete: a finished store, a run whose every init
    exists, an evaluation whose ``.nc`` exists."""
    if step.kind == "store":
        if not step.output.is_file():
            return False
        from ..data import _partial

        _partial.check_same_config(step.output, _generation(spec, step.name).to_json())
        return _partial.finished(step.output)[0]
    if step.kind == "run":
        from .setup import phases

        cfg = _run_config(step.name, spec, out, base)[0]
        return all((step.output / "inits" / f"{p}.pt").exists() for p in phases(cfg))
    return step.output.exists()


def _generation(spec: SuiteSpec, name: str) -> Any:
    """The :class:`~scimeta.data.GenerationConfig` of store ``name``."""
    from ..data import GenerationConfig

    s = spec.stores[name]
    return GenerationConfig(s.family, s.regime, tasks=s.tasks, seed=s.seed, support=s.support,
                            query=s.query,
                            bounds=tuple((k, b[0], b[1]) for k, b in s.bounds.items()))


def _execute(step: Step, spec: SuiteSpec, out: Path, base: Path, progress: bool | None) -> None:
    if step.kind == "store":
        from ..data import generate
        from ..data.shards import merge

        s, gc = spec.stores[step.name], _generation(spec, step.name)
        step.output.parent.mkdir(parents=True, exist_ok=True)
        if s.shards == 1:
            generate(gc, step.output, resume=True, progress=progress)
        else:
            paths = [generate(gc, step.output, resume=True, progress=progress, shard=(i, s.shards))
                     for i in range(s.shards)]
            merge(paths, step.output, overwrite=True)
    elif step.kind == "run":
        from .loop import train

        cfg, where = _run_config(step.name, spec, out, base)[:2]
        result = train(cfg, step.output, resume=True, config_dir=where, progress=progress)
        if not result.completed:
            raise ConfigError(f"runs.{step.name}: training stopped before every phase finished; "
                              "run the suite again to continue it")
    else:
        from .evaluate import evaluate

        e = spec.evaluations[step.name]
        test = _store_ref(e.test, spec, out, base)[0]
        val = None if e.validation is None else _store_ref(e.validation, spec, out, base)[0]
        evaluate(out / "runs" / e.run, test, label=step.name, validation=val,
                 optimizers=e.optimizers, budgets=e.budgets, max_tasks=e.max_tasks,
                 select_budget=e.select_budget)


def run_suite(path: str | os.PathLike, out: str | os.PathLike, only: list[str] | None = None,
              dry_run: bool = False, *, on_step: Callable[[dict], None] | None = None,
              progress: bool | None = False) -> dict:
    """Run (or with ``dry_run`` only plan) a suite into ``out``.

    Args:
        path: the suite TOML file; relative paths in it are relative to its folder.
        out: the output folder (stores/, runs/, suite.json).
        only: step names (``NAME`` matches every kind, ``kind:NAME`` one) to run, with
            the steps they depend on; default all.
        dry_run: check the file and report each step as ``done`` or ``to run``; nothing
            is written.
        on_step: called with each step's status record when the step ends (or, with
            ``dry_run``, when it is planned).
        progress: progress bars of generation and training (None: when a terminal).

    Returns:
        ``{"suite": path, "out": out, "steps": [record, ...]}``; a record has ``step``
        (``kind:name``), ``output``, ``status`` (``done``, ``skipped``, ``to run``,
        ``failed``) and ``seconds``. A failing step is recorded, then its error raised.
    """
    path, out = Path(path), Path(out).absolute()
    spec = load_suite(path)
    base = path.resolve().parent
    steps = _select(plan(spec, out, base), only)
    status: dict = {"suite": str(path), "out": str(out), "steps": []}
    if not dry_run:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"out={str(out)!r}: cannot create the output folder "
                              f"({exc.strerror or exc})") from None
    for s in steps:
        rec: dict[str, Any] = {"step": f"{s.kind}:{s.name}", "output": str(s.output),
                               "needs": list(s.needs)}
        start = time.perf_counter()
        try:
            done = is_done(s, spec, out, base)
            if dry_run:
                rec["status"] = "done" if done else "to run"
            elif done:
                rec["status"] = "skipped"
            else:
                log.info("suite: running %s", rec["step"])
                _execute(s, spec, out, base, progress)
                rec["status"] = "done"
        except Exception as exc:
            rec.update(status="failed", error=str(exc))
            raise
        finally:
            if "status" in rec:
                status["steps"].append(rec)
                if not dry_run:
                    rec["seconds"] = round(time.perf_counter() - start, 3)
                    tmp = out / "suite.json.tmp"  # atomic: a reader never sees half
                    tmp.write_text(json.dumps(status, indent=2) + "\n")
                    os.replace(tmp, out / "suite.json")
                if on_step:
                    on_step(rec)
    return status
