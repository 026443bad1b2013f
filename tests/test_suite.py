"""``scimeta suite``: a suite file runs end to end, resumes step by step, and refuses
bad keys and unsafe names in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scimeta.cli import main
from scimeta.errors import ConfigError
from scimeta.train.suite import load_suite, run_suite

ROOT = Path(__file__).resolve().parents[1]

TINY = """
[stores.train]
family = "oscillator"
regime = "unforced-train"
tasks = 20
support = 5
query = 20
shards = 2

[stores.val]
family = "oscillator"
regime = "unforced-test-extrapolate"
tasks = 6
seed = 1
support = 5
query = 20
bounds = { omega0 = [2.5, 3.0] }

[stores.test]
family = "oscillator"
regime = "unforced-test-interpolate"
tasks = 6
seed = 2
support = 5
query = 20

[runs.tiny.config]
data = { train = "train", validation = { val = "val" } }
model = { hidden = [8] }
meta = { algorithm = "maml", inner_steps = 1, meta_batch = 4, baselines = ["joint"] }
optim = { iterations = 5 }
run = { checkpoint_every = 5, validate_every = 5, log_every = 5 }

[evaluations.interp]
run = "tiny"
test = "test"
validation = "val"
budgets = [0, 1]
optimizers = ["sgd"]

[evaluations.plain]
run = "tiny"
test = "test"
budgets = [0, 2]
optimizers = ["adam"]
"""


def _suite(tmp_path: Path, text: str = TINY) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(text)
    return path


def _statuses(result: dict) -> dict[str, str]:
    return {r["step"]: r["status"] for r in result["steps"]}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("suite")
    path, out = _suite(tmp), tmp / "out"
    result = run_suite(path, out)
    assert set(_statuses(result).values()) == {"done"}
    return path, out


def test_tiny_suite_runs_end_to_end(finished):
    out = finished[1]
    status = json.loads((out / "suite.json").read_text())
    assert [r["step"] for r in status["steps"]] == [
        "store:train", "store:val", "store:test", "run:tiny", "evaluation:interp",
        "evaluation:plain"]
    assert (out / "stores" / "train.h5").is_file()
    assert (out / "runs" / "tiny" / "inits" / "maml.pt").is_file()
    assert (out / "runs" / "tiny" / "evaluation" / "interp.nc").is_file()
    config = (out / "runs" / "tiny" / "config.toml").read_text()
    assert str(out / "stores" / "val.h5") in config  # a store name means the suite's store


def test_second_run_skips_every_step_and_a_lost_output_is_redone(finished, capsys):
    path, out = finished
    assert set(_statuses(run_suite(path, out)).values()) == {"skipped"}
    (out / "runs" / "tiny" / "evaluation" / "plain.nc").unlink()
    again = _statuses(run_suite(path, out))
    assert again.pop("evaluation:plain") == "done"
    assert set(again.values()) == {"skipped"}
    assert main(["suite", str(path), "--out", str(out), "--only", "interp"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split()[1] for ln in lines[:-1]] == [  # --only brings what the step needs
        "store:train", "store:val", "store:test", "run:tiny", "evaluation:interp"]
    assert all(ln.split()[0] == "skipped" for ln in lines[:-1])


def test_dry_run_runs_nothing(tmp_path, capsys):
    path, out = _suite(tmp_path), tmp_path / "out"
    assert main(["suite", str(path), "--out", str(out), "--dry-run"]) == 0
    assert not out.exists()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6 and all(ln.split()[:2] == ["to", "run"] for ln in lines)


@pytest.mark.parametrize("edit, needle", [
    (("tasks = 20", "taskz = 20"), "stores.train: unknown key 'taskz'"),
    (("optim = { iterations = 5 }", "optim = { iterations = 5, lrr = 1 }"),
     "runs.tiny.config.optim: unknown key 'lrr'"),
    (("budgets = [0, 1]", "budgets = 'x'"), "evaluations.interp.budgets"),
    (('run = "tiny"', 'run = "nope"'), "evaluations.interp.run"),
    (("[stores.val]", '[stores."../evil"]'), "'../evil' cannot be used as a file name"),
])
def test_bad_suites_are_one_line_errors_naming_the_key(tmp_path, capsys, edit, needle):
    path = _suite(tmp_path, TINY.replace(*edit, 1))
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.").replace("[", r"\[")):
        run_suite(path, tmp_path / "out", dry_run=True)
    assert main(["suite", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err
    assert not (tmp_path / "out").exists()


def test_shipped_suite_parses_and_the_run_config_is_usable_from_a_suite(tmp_path):
    spec = load_suite(ROOT / "problems" / "suites" / "oscillator-quick.toml")
    assert set(spec.runs) == {"maml"} and len(spec.evaluations) == 2
    # oscillator-unforced-maml.toml is a run.toml: a suite uses it as a run's config
    path = _suite(tmp_path, '[runs.big]\nconfig = "'
                  + str(ROOT / "problems" / "suites" / "oscillator-unforced-maml.toml") + '"\n')
    plan = run_suite(path, tmp_path / "out", dry_run=True)
    assert _statuses(plan) == {"run:big": "to run"}
