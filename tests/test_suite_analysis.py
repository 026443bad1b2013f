"""Suite posteriors and landscapes: ``[posteriors.NAME]`` and ``[landscapes.NAME]`` run
after their run, are skipped once written, belong to their run's unit, expand over a
``[matrix]``; ``--report`` writes ``report.nc`` with the markdown's numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import xarray as xr
from suite_text import TINY_STORES, tiny_run

from scimeta.cli import main
from scimeta.errors import ConfigError
from scimeta.train.suite import load_suite, plan, run_suite, units
from scimeta.train.suite_report import COLUMNS, format_cell, write_report

EVERY5 = "run = { checkpoint_every = 5, validate_every = 5, log_every = 5 }"
SUITE = TINY_STORES + tiny_run("tiny", run=EVERY5) + """
[evaluations.ev]
run = "tiny"
test = "test"
budgets = [0, 1]
optimizers = ["sgd"]

[posteriors.post]
run = "tiny"
test = "test"
max_tasks = 2

[landscapes.land]
run = "tiny"
test = "test"
k = 2
max_tasks = 2
"""

STEPS = ["store:train", "store:test", "run:tiny", "evaluation:ev", "posterior:post",
         "landscape:land"]


def _write(tmp: Path, text: str = SUITE) -> Path:
    path = tmp / "analysis.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path, dict]:
    tmp = tmp_path_factory.mktemp("analysis")
    path, out = _write(tmp), tmp / "out"
    result = run_suite(path, out)
    return path, out, {r["step"]: r["status"] for r in result["steps"]}


def test_posterior_and_landscape_steps_run_after_their_run(finished):
    _, out, seen = finished
    assert seen == dict.fromkeys(STEPS, "done")
    run = out / "runs" / "tiny"
    with xr.open_dataset(run / "posterior" / "post.nc", engine="h5netcdf") as ds:
        assert ds.sizes["task"] == 2 and "coverage" in ds and ds.attrs["label"] == "post"
    with xr.open_dataset(run / "landscape" / "land.nc", engine="h5netcdf") as ds:
        assert ds.sizes["eig"] == 2 and ds.attrs["n_tasks"] == 2
    status = json.loads((out / "suite.json").read_text())
    assert [r["step"] for r in status["steps"]] == STEPS
    assert status["steps"][-1]["needs"] == ["run:tiny", "store:test"]


def test_second_invocation_skips_them_and_a_lost_output_is_redone(finished, capsys):
    path, out, _ = finished
    again = {r["step"]: r["status"] for r in run_suite(path, out)["steps"]}
    assert again == dict.fromkeys(STEPS, "skipped")
    assert main(["suite", str(path), "--out", str(out), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split()[:2] for ln in lines] == [["done", s] for s in STEPS]
    (out / "runs" / "tiny" / "landscape" / "land.nc").unlink()
    redo = {r["step"]: r["status"] for r in run_suite(path, out, only=["land"])["steps"]}
    assert redo == {**dict.fromkeys(STEPS[:3], "skipped"), "landscape:land": "done"}


def test_dry_run_and_units_list_them(tmp_path, capsys):
    path, out = _write(tmp_path), tmp_path / "out"
    assert main(["suite", str(path), "--out", str(out), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split()[2] for ln in lines] == STEPS
    assert all(ln.split()[:2] == ["to", "run"] for ln in lines) and not out.exists()
    assert main(["suite", str(path), "--out", str(out), "--list-units"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[1].split() == ["0", "tiny", *STEPS]
    assert main(["suite", str(path), "--out", str(out), "--array-index", "0",
                 "--dry-run"]) == 0
    assert [ln.split()[2] for ln in capsys.readouterr().out.splitlines()] == STEPS


def test_report_nc_round_trips_the_markdown_numbers(finished, capsys):
    path, out, _ = finished
    assert main(["suite", str(path), "--out", str(out), "--report"]) == 0
    text = (out / "report.md").read_text()
    assert text in capsys.readouterr().out
    table = [[c.strip() for c in ln.strip("|").split("|")] for ln in text.splitlines()
             if ln.startswith("| ev |")]
    with xr.open_dataset(out / "report.nc", engine="h5netcdf") as ds:
        assert ds.sizes["cell"] == len(table) == 2  # maml and random, SGD
        cells = [{k: ds[k].values[i].item() for k in ds.variables if "cell" in ds[k].dims}
                 for i in range(ds.sizes["cell"])]
        assert [format_cell(c) for c in cells] == table
        assert list(ds["init"].values) == ["maml", "random"]
        assert math.isnan(float(ds["ratio_to_joint"][0]))  # no joint baseline: absent
        assert float(ds["ratio_to_random"][1]) == pytest.approx(1.0)
        coverage = float(ds["coverage_90"].sel(posterior="post"))
        nll = float(ds["nll"].sel(posterior="post"))
    with xr.open_dataset(out / "runs" / "tiny" / "posterior" / "post.nc",
                         engine="h5netcdf") as post:
        assert coverage == pytest.approx(float(post["coverage"].sel(level=0.9).mean()))
        assert nll == pytest.approx(float(post["nll"].mean()))
    row = next(ln for ln in text.splitlines() if ln.startswith("| post |"))
    assert row.split("|")[6].strip() == f"{coverage:.3g}"
    assert len(table[0]) == len(COLUMNS) and "`posterior:post`" in text
    assert not list(out.glob(".report*"))  # no temporary file left
    assert write_report(out) == text


MATRIX = SUITE.replace(
    "[runs.tiny.config]", '[matrix]\nseed = [0, 1]\n\n[runs."tiny-s{seed}".config]'
).replace("log_every = 5 }", 'log_every = 5, seed = "{seed}" }')


def test_matrix_expands_posteriors_and_landscapes(tmp_path):
    text = MATRIX.split("[evaluations.ev]")[0] + """
[posteriors."post-s{seed}"]
run = "tiny-s{seed}"
test = "test"
structure = "diag"

[landscapes."land-s{seed}"]
run = "tiny-s{seed}"
test = "test"
init = "random"
"""
    path = _write(tmp_path, text)
    spec = load_suite(path)
    assert list(spec.posteriors) == ["post-s0", "post-s1"]
    assert spec.landscapes["land-s1"].run == "tiny-s1"
    found = units(plan(spec, tmp_path / "out", tmp_path))
    assert [[s.id for s in u.steps][2:] for u in found] == [
        [f"run:tiny-s{i}", f"posterior:post-s{i}", f"landscape:land-s{i}"] for i in (0, 1)]
    assert found[1].steps[-1].output == tmp_path / "out/runs/tiny-s1/landscape/land-s1.nc"


@pytest.mark.parametrize("edit, needle", [
    (("max_tasks = 2\n\n[landscapes", "max_taks = 2\n\n[landscapes"),
     "suite.posteriors.post: unknown key 'max_taks'"),
    (('test = "test"\nmax_tasks = 2\n\n[land', 'test = "test"\nstructure = "kfac"\n\n[land'),
     "posteriors.post.structure = 'kfac' is not allowed (allowed: full, diag, kron"),
    (("k = 2", "k = 0"), "landscapes.land.k = 0 is not allowed; it must be an int >= 1"),
    (("[landscapes.land]\nrun = \"tiny\"", "[landscapes.land]\nrun = \"nope\""),
     "landscapes.land.run = 'nope' is not a run of the suite (runs: tiny)"),
    (("[posteriors.post]", '[posteriors."../x"]'), "'../x' cannot be used as a file name"),
])
def test_bad_tables_are_one_line_errors_naming_the_key(tmp_path, edit, needle):
    text = SUITE.replace(*edit, 1)
    assert text != SUITE
    with pytest.raises(ConfigError) as err:
        load_suite(_write(tmp_path, text))
    assert needle in str(err.value) and "\n" not in str(err.value)
