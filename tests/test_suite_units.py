"""Array units of a suite: ``--stage stores`` then ``--array-index I`` per unit, each
with its own status file merged into suite.json; a step shared by units is done once
(a waiting lock); ``--report`` tabulates every evaluation."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from suite_text import TINY_STORES

from scimeta.cli import main
from scimeta.data.lock import WaitLock
from scimeta.errors import ConfigError, RunError
from scimeta.train.suite import pick_unit, run_suite
from scimeta.train.suite_report import write_report
from scimeta.train.suite_status import merge_records, suite_status

TWO = """
[matrix]
seed = [0, 1]
""" + TINY_STORES + """
[runs."maml-s{seed}".config]
data = { train = "train" }
model = { hidden = [8] }
meta = { algorithm = "maml", inner_steps = 1, meta_batch = 2, baselines = [] }
optim = { iterations = 5 }
run = { seed = "{seed}", checkpoint_every = 5, validate_every = 5, log_every = 5 }

[evaluations."maml-s{seed}-test"]
run = "maml-s{seed}"
test = "test"
budgets = [0, 1]
optimizers = ["sgd"]
"""


@pytest.fixture(scope="module")
def array_run(tmp_path_factory) -> tuple[Path, Path, list[str]]:
    """Stores as one stage, then unit 0 by index and unit 1 by SLURM_ARRAY_TASK_ID."""
    tmp = tmp_path_factory.mktemp("units")
    path, out = tmp / "two.toml", tmp / "out"
    path.write_text(TWO)
    stores = run_suite(path, out, stage="stores")
    first = run_suite(path, out, array_index=0)
    mp = pytest.MonkeyPatch()
    mp.setenv("SLURM_ARRAY_TASK_ID", "11")
    mp.setenv("SLURM_ARRAY_TASK_MIN", "10")
    try:
        second = run_suite(path, out, array_index="auto")
    finally:
        mp.undo()
    seen = [f"{r['step']}={r['status']}" for s in (stores, first, second) for r in s["steps"]]
    return path, out, seen


def test_stage_then_units_each_do_their_share_once(array_run):
    out, seen = array_run[1:]
    assert seen == [
        "store:train=done", "store:test=done",
        "store:train=skipped", "store:test=skipped", "run:maml-s0=done",
        "evaluation:maml-s0-test=done",
        "store:train=skipped", "store:test=skipped", "run:maml-s1=done",
        "evaluation:maml-s1-test=done"]
    assert sorted(p.name for p in (out / "status").iterdir()) == [
        "stores.json", "unit-maml-s0.json", "unit-maml-s1.json"]
    unit1 = json.loads((out / "status" / "unit-maml-s1.json").read_text())
    assert [r["step"] for r in unit1["steps"]] == [
        "store:train", "store:test", "run:maml-s1", "evaluation:maml-s1-test"]
    merged = json.loads((out / "suite.json").read_text())
    by_step = {r["step"]: r for r in merged["steps"]}
    assert list(by_step) == ["store:train", "store:test", "run:maml-s0", "run:maml-s1",
                             "evaluation:maml-s0-test", "evaluation:maml-s1-test"]
    # a store skipped by the units keeps the record (and wall time) of the stage that made it
    assert by_step["store:train"]["status"] == "done"
    assert all(r["status"] == "done" and r["seconds"] >= 0 for r in merged["steps"])
    assert not list(out.rglob("*.tmp*"))


def test_status_and_report_merge_every_unit(array_run, capsys):
    path, out, _ = array_run
    assert main(["suite", str(path), "--out", str(out), "--status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split()[:2] for ln in lines] == [["done", s] for s in (
        "store:train", "store:test", "run:maml-s0", "run:maml-s1", "evaluation:maml-s0-test",
        "evaluation:maml-s1-test")]
    assert main(["suite", str(path), "--out", str(out), "--report"]) == 0
    printed = capsys.readouterr().out
    text = (out / "report.md").read_text()
    assert text in printed
    table = [ln for ln in text.splitlines() if ln.startswith("| maml-s")]
    # one row per (evaluation, init, optimizer): maml and random, SGD
    assert [(r.split("|")[1].strip(), r.split("|")[3].strip()) for r in table] == [
        ("maml-s0-test", "maml"), ("maml-s0-test", "random"), ("maml-s1-test", "maml"),
        ("maml-s1-test", "random")]
    random_row = table[1].split("|")
    assert random_row[8].strip().startswith("1 ")  # random vs itself: ratio 1
    assert "--array-index auto" not in text and "--only evaluation:maml-s1-test" in text


def test_unit_choice_errors_name_the_argument(array_run, monkeypatch):
    path, out, _ = array_run
    with pytest.raises(ConfigError, match=r"array_index=2: the suite has 2 unit\(s\) "
                                          r"\(allowed: 0 to 1\)"):
        run_suite(path, out, array_index=2, dry_run=True)
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID", raising=False)
    with pytest.raises(ConfigError, match="array_index='auto' needs SLURM_ARRAY_TASK_ID"):
        run_suite(path, out, array_index="auto", dry_run=True)
    with pytest.raises(ConfigError, match="array_index='x': expected an integer or 'auto'"):
        pick_unit([], "x")
    with pytest.raises(ConfigError, match="array_index: give it alone"):
        run_suite(path, out, array_index=0, only=["test"], dry_run=True)
    with pytest.raises(RunError, match="no suite output here"):
        write_report(out / "nothing")


def test_merge_prefers_the_record_that_did_the_step():
    done = {"step": "run:a", "status": "done", "seconds": 9.0, "ended": 1.0}
    later_skip = {"step": "run:a", "status": "skipped", "seconds": 0.0, "ended": 2.0}
    redo = {"step": "run:a", "status": "failed", "ended": 3.0}
    other = {"step": "store:s", "status": "skipped", "ended": 0.5}
    assert merge_records([later_skip, done, other], ["store:s", "run:a"]) == [other, done]
    assert merge_records([done, redo, later_skip]) == [redo]
    assert suite_status("/nonexistent/folder")["steps"] == []


HOLD = """
import sys, time
from pathlib import Path
from scimeta.data.lock import WaitLock
with WaitLock(Path(sys.argv[1]), "store:x"):
    print("held", flush=True)
    time.sleep(1.5)
    Path(sys.argv[1] + ".finished").touch()  # still holding the lock
"""


def test_wait_lock_makes_a_second_process_wait(tmp_path):
    lock = tmp_path / "locks" / "store-x.lock"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        start = time.monotonic()
        with WaitLock(lock, "store:x"):
            waited = time.monotonic() - start
            assert Path(str(lock) + ".finished").exists()  # the holder had finished
    finally:
        proc.wait(timeout=30)
    assert waited > 0.5


def test_store_generation_settings_reach_the_generator(tmp_path):
    """Every GenerationConfig setting a suite store names (compression, solver
    preset, dtype, sampling, bounds) is the one its store is generated with."""
    from scimeta.train.suite import _generation
    from scimeta.train.suite_spec import load_suite

    path = tmp_path / "s.toml"
    path.write_text("""
[stores.train]
family = "oscillator"
regime = "train"
tasks = 4
seed = 3
compression = "lzf"
solver_preset = "published"
dtype = "float64"
bounds = {omega0 = [1.0, 1.5]}
""")
    g = _generation(load_suite(path), "train")
    assert (g.compression, g.solver_preset, g.dtype, g.seed, g.tasks) == (
        "lzf", "published", "float64", 3, 4)
    assert g.bounds == (("omega0", 1.0, 1.5),)
