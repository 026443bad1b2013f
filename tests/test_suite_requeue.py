"""Pre-emption: a signalled ``scimeta suite`` exits with EXIT_REQUEUE (75) after the
training checkpoint and the same command completes the suite; the SLURM scripts use
only existing flags and requeue on that code; an HDF5 lock error says how to work on
file systems without locks."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from suite_text import TINY_TRAIN

from scimeta.cli import build_parser
from scimeta.cli.common import EXIT_REQUEUE
from scimeta.data.lock import HDF5_LOCKING_HINT, is_lock_error, locked_message
from scimeta.train.suite import run_suite

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted([*(ROOT / "problems" / "suites" / "slurm").glob("*.sbatch"),
                  *(ROOT / "datasets" / "slurm").glob("*.sbatch"),
                  *(ROOT / "datasets" / "slurm").glob("*.sh")])

LONG = TINY_TRAIN + """
[runs.long.config]
data = { train = "train" }
model = { hidden = [8] }
meta = { algorithm = "maml", inner_steps = 1, meta_batch = 2, baselines = [] }
optim = { iterations = 400 }
run = { seed = 1, checkpoint_every = 10000, validate_every = 10000, log_every = 5 }

[evaluations.self]
run = "long"
test = "train"
budgets = [0, 1]
optimizers = ["sgd"]
"""


def test_exit_code_is_ex_tempfail():
    assert EXIT_REQUEUE == 75


def test_sigterm_stops_the_suite_with_the_requeue_code_and_it_resumes(tmp_path):
    path, out = tmp_path / "long.toml", tmp_path / "out"
    path.write_text(LONG)
    proc = subprocess.Popen([sys.executable, "-m", "scimeta", "-q", "suite", str(path),
                             "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    metrics = out / "runs" / "long" / "metrics.csv"
    deadline = time.monotonic() + 120
    while not metrics.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    if proc.poll() is not None:
        pytest.skip("the suite finished before it could be signalled")
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    if "evaluation:self" in stdout:
        pytest.skip("training finished before the signal arrived")
    assert proc.returncode == EXIT_REQUEUE, stderr
    assert "stopped by SIGTERM" in stdout and f"exit status {EXIT_REQUEUE}" in stdout
    status = {r["step"]: r["status"]
              for r in json.loads((out / "suite.json").read_text())["steps"]}
    assert status == {"store:train": "done", "run:long": "stopped"}
    assert (out / "runs" / "long" / "checkpoint.pt").is_file()

    again = run_suite(path, out)  # the same command continues from the checkpoint
    assert [(r["step"], r["status"]) for r in again["steps"]] == [
        ("store:train", "skipped"), ("run:long", "done"), ("evaluation:self", "done")]
    assert again["stopped"] is None
    assert not (out / "runs" / "long" / "checkpoint.pt").exists()


def _commands(script: Path) -> list[list[str]]:
    """Every ``scimeta VERB ...`` command of a script (comments of the suite scripts
    too), shell variables replaced by a number."""
    text = script.read_text().replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        if line.lstrip().startswith("#") and "problems/suites" not in str(script):
            continue
        m = re.search(r"(?:^|[\s#])(scimeta\s+(?:suite|train|generate|merge)\s.*)$", line)
        if not m:
            continue
        words = shlex.split(re.sub(r"\$\{[^}]*\}|\$\w+", "1", m.group(1)), comments=True)
        stop = [i for i, w in enumerate(words) if w in ("&", "|", ";", "&&", "||")]
        found.append(words[1:stop[0]] if stop else words[1:])
    return found


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_slurm_scripts_use_existing_flags_and_requeue_on_75(script):
    commands = _commands(script)
    assert commands, f"{script.name} runs no scimeta command"
    parser = build_parser()
    for words in commands:
        try:
            parser.parse_args(words)
        except SystemExit:
            pytest.fail(f"{script.name}: `scimeta {' '.join(words)}` does not parse")
    text = script.read_text()
    if re.search(r"^scimeta suite .*--array-index|^srun .*scimeta train", text, re.M):
        assert "#SBATCH --signal=B:USR1@" in text and "trap " in text
        assert re.search(r'if \[ "\$rc" -eq 75 \]; then( *#[^\n]*)?\s+scontrol requeue', text)


def test_lock_errors_say_how_to_work_without_locks(tmp_path):
    unsupported = OSError("Unable to open file (unable to lock file, errno = 38, error "
                          "message = 'Function not implemented')")
    held = OSError("Unable to open file (unable to lock file, errno = 11, error message = "
                   "'Resource temporarily unavailable')")
    assert is_lock_error(unsupported) and is_lock_error(held)
    assert not is_lock_error(OSError("Unable to open file (file signature not found)"))
    path = tmp_path / "s.h5"
    for exc in (unsupported, held, None):
        text = locked_message(path, "read", exc)
        assert "\n" not in text and text.endswith(HDF5_LOCKING_HINT)
        assert "HDF5_USE_FILE_LOCKING=FALSE" in text
    assert "does not support file locks" in locked_message(path, "read", unsupported)
    assert "locked by another process" in locked_message(path, "read", held)
