"""Problem suites: stores, training runs, evaluations, posteriors and landscapes
declared in one TOML file.

The file format, matrix expansion, the plan and the units are in :mod:`.suite_spec`
(the posterior and landscape steps in :mod:`.suite_analysis`); this module runs the
steps. Steps run in dependency order (stores, runs, evaluations, posteriors,
landscapes); each resumes and a finished one is skipped. Every step runs under a
lock file ``OUT/locks/KIND-NAME.lock``, so array tasks that share a store wait for
the one generating it instead of generating it twice. Status: :mod:`.suite_status`.
See docs/scale-out.md.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..runtime.signals import StopFlag
from .suite_spec import (  # noqa: F401  (re-exported: the suite's public names)
    EvaluationSpec,
    LandscapeSpec,
    PosteriorSpec,
    RunSpec,
    Step,
    StoreSpec,
    SuiteSpec,
    Unit,
    load_suite,
    pick_unit,
    plan,
    run_config,
    select,
    store_ref,
    units,
)
from .suite_status import record, suite_status

log = logging.getLogger(__name__)

STAGES = ("stores",)


def is_done(step: Step, spec: SuiteSpec, out: Path, base: Path) -> bool:
    """Whether a step's output is complete: a finished store, a run whose every init
    exists, an evaluation, posterior or landscape whose ``.nc`` exists."""
    if step.kind == "store":
        if not step.output.is_file():
            return False
        from ..data import _partial

        _partial.check_same_config(step.output, _generation(spec, step.name).to_json())
        return _partial.finished(step.output)[0]
    if step.kind == "run":
        from .setup import phases

        cfg = run_config(step.name, spec, out, base)[0]
        return all((step.output / "inits" / f"{p}.pt").exists() for p in phases(cfg))
    return step.output.exists()


def _generation(spec: SuiteSpec, name: str) -> Any:
    """The :class:`~scimeta.data.GenerationConfig` of store ``name``."""
    from ..data import GenerationConfig

    s = spec.stores[name]
    same = {f.name for f in dataclasses.fields(GenerationConfig)} - {"bounds", "exclude"}
    return GenerationConfig(**{k: getattr(s, k) for k in same},
                            bounds=tuple((k, b[0], b[1]) for k, b in s.bounds.items()),
                            exclude=tuple(tuple((k, b[0], b[1]) for k, b in box.items())
                                          for box in s.exclude))


def _execute(step: Step, spec: SuiteSpec, out: Path, base: Path,
             progress: bool | None) -> str | None:
    """Run one step; the signal's name when training stopped before it finished."""
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

        cfg, where = run_config(step.name, spec, out, base)[:2]
        result = train(cfg, step.output, resume=True, config_dir=where, progress=progress)
        if not result.completed:
            return result.stopped_by or "a signal"
    else:
        _analyse(step, spec, out, base)
    return None


def _analyse(step: Step, spec: SuiteSpec, out: Path, base: Path) -> None:
    """Run an evaluation, posterior or landscape step on its trained run."""
    from .suite_analysis import run_landscape, run_posterior

    e = spec.analyses()[step.kind][step.name]
    run_dir = out / "runs" / e.run
    test = store_ref(e.test, spec, out, base)[0]
    v = getattr(e, "validation", None)
    val = None if v is None else store_ref(v, spec, out, base)[0]
    if step.kind == "posterior":
        run_posterior(e, run_dir, test, val, step.name)
    elif step.kind == "landscape":
        run_landscape(e, run_dir, test, step.name)
    else:
        from .evaluate import evaluate

        evaluate(run_dir, test, label=step.name, validation=val,
                 optimizers=e.optimizers, budgets=e.budgets, max_tasks=e.max_tasks,
                 select_budget=e.select_budget, physics_weights=e.physics_weights,
                 n_collocation=e.n_collocation, backtrack=e.backtrack, reference=e.reference,
                 code_steps=e.code_steps)


def _chosen(steps: list[Step], only: list[str] | None, stage: str | None,
            unit: Unit | None) -> tuple[list[Step], str]:
    """The steps an invocation runs and the name of its status file."""
    if stage is not None and stage not in STAGES:
        raise ConfigError(f"stage={stage!r}: not a stage (allowed: {', '.join(STAGES)})")
    if unit is not None:
        if stage is not None or only:
            raise ConfigError("array_index: give it alone, without stage or only")
        return list(unit.steps), f"unit-{unit.name}"
    if stage == "stores":
        return [s for s in select(steps, only) if s.kind == "store"], "stores"
    return select(steps, only), "main"


def run_suite(path: str | os.PathLike, out: str | os.PathLike, only: list[str] | None = None,
              dry_run: bool = False, *, stage: str | None = None,
              array_index: str | int | None = None,
              on_step: Callable[[dict], None] | None = None, progress: bool | None = False,
              command: str | None = None) -> dict:
    """Run (or with ``dry_run`` only plan) a suite, or a share of it, into ``out``.

    Args:
        path: the suite TOML file; relative paths in it are relative to its folder.
        out: the output folder (stores/, runs/, status/, suite.json).
        only: step names (``NAME`` matches every kind, ``kind:NAME`` one) to run, with
            the steps they depend on; default all.
        dry_run: check the file and report each step as ``done`` or ``to run``; nothing
            is written.
        stage: ``"stores"``: only the store steps (of ``only``, default all).
        array_index: run only this unit (0-based; ``"auto"``: ``SLURM_ARRAY_TASK_ID``):
            one run, its evaluations, posteriors and landscapes and the stores they
            need (see :func:`units`).
        on_step: called with each step's status record when the step ends (or, with
            ``dry_run``, when it is planned).
        progress: progress bars of generation and training (None: when a terminal).
        command: the command line recorded with each step (default: the ``scimeta
            suite ... --only STEP`` that redoes it).

    Returns:
        ``{"suite": path, "out": out, "steps": [record, ...], "stopped": signal or
        None}``; a record has ``step`` (``kind:name``), ``output``, ``needs``,
        ``status`` (``done``, ``skipped``, ``to run``, ``failed``, ``stopped``),
        ``seconds``, ``ended`` (Unix time) and ``command``. A failing step is recorded,
        then its error raised; a SIGTERM/SIGUSR1 stops the suite after the current step
        (training at its next step boundary, with a checkpoint).
    """
    path, out = Path(path), Path(out).absolute()
    spec = load_suite(path)
    base = path.resolve().parent
    every = plan(spec, out, base)
    unit = None if array_index is None else pick_unit(units(every), array_index)
    steps, writer = _chosen(every, only, stage, unit)
    order = [s.id for s in every]
    header = {"suite": str(path), "out": str(out)}
    status: dict = {**header, "steps": [], "stopped": None}
    if not dry_run:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"out={str(out)!r}: cannot create the output folder "
                              f"({exc.strerror or exc})") from None
    with StopFlag(("SIGTERM", "SIGUSR1")) as flag:
        for s in steps:
            if flag.requested or status["stopped"]:
                status["stopped"] = status["stopped"] or flag.requested
                break
            rec = _step(s, spec, out, base, dry_run, progress,
                        command or f"scimeta suite {path} --out {out} --only {s.id}")
            error = rec.pop("exception", None)
            status["steps"].append(rec)
            if rec["status"] == "stopped":
                status["stopped"] = rec.pop("stopped_by")
            if not dry_run:
                record(out, writer, [rec], header, order)
            if on_step:
                on_step(rec)
            if error is not None:
                raise error
    return status


def _step(s: Step, spec: SuiteSpec, out: Path, base: Path, dry_run: bool,
          progress: bool | None, command: str) -> dict:
    """Run (or plan) one step under its lock; its status record."""
    from ..data.lock import WaitLock

    rec: dict[str, Any] = {"step": s.id, "output": str(s.output), "needs": list(s.needs)}
    start = time.perf_counter()
    try:
        if dry_run:
            rec["status"] = "done" if is_done(s, spec, out, base) else "to run"
            return rec
        with WaitLock(out / "locks" / f"{s.kind}-{s.name}.lock", s.id):
            if is_done(s, spec, out, base):
                rec["status"] = "skipped"
            else:
                log.info("suite: running %s", s.id)
                stopped = _execute(s, spec, out, base, progress)
                rec["status"] = "stopped" if stopped else "done"
                if stopped:
                    rec["stopped_by"] = stopped
    except Exception as exc:
        rec.update(status="failed", error=str(exc), exception=exc)
    rec.update(seconds=round(time.perf_counter() - start, 3), ended=time.time(),
               command=command)
    return rec


__all__ = ["is_done", "load_suite", "pick_unit", "plan", "run_suite", "suite_status",
           "units"]
