"""Status files of a suite's output folder, safe when several processes share it.

Every invocation writes its own file ``OUT/status/WRITER.json`` (``main`` for a plain
``scimeta suite``, ``stores`` for ``--stage stores``, ``unit-NAME`` for an array
unit), cumulative over its invocations; ``OUT/suite.json`` is the merged view of all
of them, rewritten after every step. Every file is written atomically (a uniquely
named temporary file renamed over it), so concurrent writers never leave half a file.

Merging keeps, per step, the latest record that did something (``done``, ``failed``,
``stopped``), else the latest ``skipped`` one: a step skipped later keeps the wall
time of the run that did it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from ..runtime.atomic import write_json

#: statuses of a record that did not do the step
_PASSIVE = ("skipped", "to run")


def _read(path: Path) -> list[dict]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # absent, or an older/foreign file: nothing to merge
        return []
    steps = data.get("steps") if isinstance(data, dict) else None
    return [r for r in steps if isinstance(r, dict) and "step" in r] if isinstance(
        steps, list) else []


def merge_records(records: Iterable[dict], order: list[str] | None = None) -> list[dict]:
    """One record per step (see the module docstring), in ``order`` (step ids) and then
    in the order first seen."""
    best: dict[str, dict] = {}
    for r in records:
        old = best.get(r["step"])
        if old is None:
            best[r["step"]] = r
            continue
        key_new = (r.get("status") not in _PASSIVE, r.get("ended", 0.0))
        key_old = (old.get("status") not in _PASSIVE, old.get("ended", 0.0))
        if key_new >= key_old:
            best[r["step"]] = r
    rank = {sid: i for i, sid in enumerate(order or [])}
    first = {sid: i for i, sid in enumerate(best)}
    return sorted(best.values(), key=lambda r: (rank.get(r["step"], len(rank)),
                                                first[r["step"]]))


def suite_status(out: str | os.PathLike, order: list[str] | None = None) -> dict:
    """The merged status of every invocation that wrote into ``out``.

    Args:
        out: the suite's output folder.
        order: step ids in plan order (default: the order the records were found).

    Returns:
        ``{"out": out, "steps": [record, ...]}``.
    """
    out = Path(out)
    records = [r for f in sorted((out / "status").glob("*.json")) for r in _read(f)]
    if not records:  # a folder written before status/ existed
        records = _read(out / "suite.json")
    return {"out": str(out), "steps": merge_records(records, order)}


def record(out: Path, writer: str, records: list[dict], header: dict,
           order: list[str] | None = None) -> None:
    """Add ``records`` to ``OUT/status/WRITER.json`` and rewrite ``OUT/suite.json`` as
    the merged view (``header`` keys first)."""
    folder = out / "status"
    folder.mkdir(parents=True, exist_ok=True)
    own = folder / f"{writer}.json"
    write_json(own, {**header, "steps": merge_records([*_read(own), *records], order)})
    write_json(out / "suite.json", {**header, **suite_status(out, order)})
