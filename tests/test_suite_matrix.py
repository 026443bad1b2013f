"""Matrix suites: ``[matrix]`` axes expand template tables into concrete, deterministically
named stores, runs and evaluations; mistakes are one-line errors naming the table."""

from __future__ import annotations

from pathlib import Path

import pytest

from scimeta.cli import main
from scimeta.errors import ConfigError
from scimeta.train.suite import load_suite, plan, units

ROOT = Path(__file__).resolve().parents[1]

MATRIX = """
[matrix]
algorithm = ["maml", "fomaml"]
seed = [0, 1]
problem = [{family = "oscillator", regime = "unforced-train"}]

[stores."{problem.regime}"]
family = "{problem.family}"
regime = "{problem.regime}"
tasks = 6

[stores.test]
family = "oscillator"
regime = "unforced-test-interpolate"
tasks = 3

[runs."{algorithm}-s{seed}".config]
data = { train = "unforced-train" }
meta = { algorithm = "{algorithm}", baselines = [] }
optim = { iterations = 5 }
run = { seed = "{seed}" }

[runs."{algorithm}-s{seed}".overrides]
model = { hidden = [8] }

[evaluations."{algorithm}-s{seed}-test"]
run = "{algorithm}-s{seed}"
test = "test"
budgets = [0, 1]
optimizers = ["sgd"]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "m.toml"
    path.write_text(text)
    return path


def test_matrix_expands_in_declared_order_with_typed_values(tmp_path):
    spec = load_suite(_write(tmp_path, MATRIX))
    assert list(spec.runs) == ["maml-s0", "maml-s1", "fomaml-s0", "fomaml-s1"]
    assert list(spec.stores) == ["unforced-train", "test"]
    assert spec.stores["unforced-train"].regime == "unforced-train"
    assert list(spec.evaluations) == [f"{r}-test" for r in spec.runs]
    assert spec.evaluations["fomaml-s1-test"].run == "fomaml-s1"
    steps = plan(spec, tmp_path / "out", tmp_path)
    from scimeta.train.suite_spec import run_config

    cfg = run_config("fomaml-s1", spec, tmp_path / "out", tmp_path)[0]
    assert (cfg.meta.algorithm, cfg.run.seed, cfg.model.hidden) == ("fomaml", 1, (8,))
    assert isinstance(cfg.run.seed, int)  # "{seed}" alone keeps the integer
    found = units(steps)
    assert [(u.index, u.name) for u in found] == list(enumerate(spec.runs))
    assert [s.id for s in found[2].steps] == [
        "store:unforced-train", "store:test", "run:fomaml-s0", "evaluation:fomaml-s0-test"]


def test_dry_run_and_list_units_print_the_expanded_steps(tmp_path, capsys):
    path, out = _write(tmp_path, MATRIX), tmp_path / "out"
    assert main(["suite", str(path), "--out", str(out), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split()[2] for ln in lines] == [
        "store:unforced-train", "store:test", "run:maml-s0", "run:maml-s1", "run:fomaml-s0",
        "run:fomaml-s1", "evaluation:maml-s0-test", "evaluation:maml-s1-test",
        "evaluation:fomaml-s0-test", "evaluation:fomaml-s1-test"]
    assert main(["suite", str(path), "--out", str(out), "--list-units"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("4 unit(s); submit with sbatch --array=0-3")
    assert lines[4].split() == ["3", "fomaml-s1", "store:unforced-train", "store:test",
                                "run:fomaml-s1", "evaluation:fomaml-s1-test"]
    assert main(["suite", str(path), "--out", str(out), "--array-index", "1",
                 "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split()[2] for ln in lines] == [
        "store:unforced-train", "store:test", "run:maml-s1", "evaluation:maml-s1-test"]
    assert not out.exists()


@pytest.mark.parametrize("edit, needle", [
    (('[runs."{algorithm}-s{seed}".config]', '[runs."{algo}-s{seed}".config]'),
     "suite.runs.{algo}-s{seed}: {algo} is not an axis of [matrix] (axes: algorithm, seed, "
     "problem)"),
    (('[evaluations."{algorithm}-s{seed}-test"]', '[evaluations."{algorithm}-test"]'),
     "placeholder {seed} is not an axis of this table's name (its name uses: algorithm)"),
    (('seed = [0, 1]', 'seed = [0, 0]'), "the name 'maml-s0' is given twice"),
    (('seed = [0, 1]', 'seed = []'), "suite.matrix.seed: expected a non-empty list"),
    (('seed = [0, 1]', 'seed = [0, "a"]'), "suite.matrix.seed: values must all be"),
    (('family = "{problem.family}"', 'family = "{problem.kind}"'),
     "matrix.problem values have no key 'kind'"),
])
def test_matrix_mistakes_are_one_line_errors(tmp_path, capsys, edit, needle):
    path = _write(tmp_path, MATRIX.replace(*edit, 1))
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    assert needle in str(info.value)
    assert main(["suite", str(path), "--out", str(tmp_path / "o"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err


def test_shipped_matrix_suite_and_plain_suites_still_parse():
    spec = load_suite(ROOT / "problems" / "suites" / "oscillator-matrix.toml")
    assert list(spec.runs) == [f"{a}-s{s}" for a in ("maml", "fomaml") for s in range(3)]
    assert len(spec.evaluations) == 6
    quick = load_suite(ROOT / "problems" / "suites" / "oscillator-quick.toml")
    assert set(quick.runs) == {"maml"}  # a suite without [matrix] is read as before
