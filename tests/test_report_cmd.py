"""``scimeta report``: one document from suite outputs, with our numbers equal to the
netCDF results, the published figures beside them, plots, and an HTML variant."""

from __future__ import annotations

import math
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from scimeta.cli import main
from scimeta.errors import RunError, UnknownNameError
from scimeta.report import build_report
from scimeta.report.published import PUBLISHED, get

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "problems" / "suites" / "finn-sinusoid-smoke.toml"
#: the K = 5 share of the smoke suite: two runs, two evaluations (a few seconds)
ONLY = ["finn-k5", "finn-metasgd-k5"]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    from scimeta.train.suite import run_suite

    root = tmp_path_factory.mktemp("results")
    run_suite(str(SMOKE), root / "finn-smoke", only=ONLY)
    return root


@pytest.fixture(scope="module")
def md(results) -> str:
    return build_report(results).read_text()


def _row(text: str, first: str, *more: str) -> list[str]:
    """The first markdown table row starting with cells ``first, *more``."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[:1 + len(more)] == [first, *more]:
            return cells
    raise AssertionError(f"no row {first, *more}")


def _nc(results: Path, run: str, name: str):
    import xarray as xr

    path = results / "finn-smoke" / "runs" / run / "evaluation" / f"{name}.nc"
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()


def test_table_values_equal_the_netcdf(results, md):
    ds = _nc(results, "maml-k5", "finn-k5")
    row = _row(md, "finn-k5", "maml-k5", "maml", "sgd")
    at = ds.sel(init="maml", optimizer="sgd", budget=int(ds["budget"].values[-1]))
    assert row[4] == str(int(ds["budget"].values[-1]))
    assert float(row[5]) == pytest.approx(float(at["median_mse"]), rel=5e-4)
    assert float(row[7].split()[0]) == pytest.approx(float(at["ratio_to_random"]), rel=5e-3)
    assert float(row[8].split()[0]) == pytest.approx(float(at["ratio_to_joint"]), rel=5e-3)


def test_published_row_with_source_and_ratio(results, md):
    pub = get("li2017-maml-k5")
    row = _row(md, "li2017-maml-k5")
    assert row[1:5] == ["MAML", "K = 5, 1 step", "1.13 ± 0.18", "Li et al. 2017, Table 1"]
    mse = _nc(results, "maml-k5", "finn-k5")["query_mse"].sel(
        init="maml", optimizer="sgd", budget=1).values
    ours = float(np.mean(mse[np.isfinite(mse)]))
    assert float(row[5].split(" ± ")[0]) == pytest.approx(ours, rel=5e-4)
    assert row[6] == "finn-k5"
    ratio = ours / pub.value
    assert float(row[8]) == pytest.approx(ratio, rel=5e-3)
    assert row[9] == ("at or below" if ratio <= 1 else f"above (×{ratio:.3g})")
    assert "arXiv:1707.09835" in md  # the full citation
    metasgd = _row(md, "li2017-metasgd-k5")
    assert metasgd[6] == "finn-metasgd-k5"
    # K = 10 was not run: the row is there, with no result
    assert _row(md, "li2017-maml-k10")[5] == "no matching result"


def test_plots_and_commands(results, md):
    pngs = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", md)
    assert len(pngs) == 2
    for rel in pngs:
        assert (results / rel).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"scimeta suite {SMOKE} --out {results / 'finn-smoke'}" in md
    assert "### Hardware and wall times" in md and "| run | " in md
    # run.json records the machine the run trained on, and the report names it
    assert f"of {os.cpu_count()} CPUs usable" in md and "torch threads" in md


class _Checker(HTMLParser):
    """Collects text and checks that every non-void tag closes in order."""

    VOID = {"meta", "img", "br", "hr", "link"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack.pop() == tag, (tag, self.stack)

    def handle_data(self, data):
        self.text.append(data)


def test_html_is_well_formed_with_the_same_numbers(results, md, tmp_path):
    out = tmp_path / "r.html"
    assert main(["report", str(results), "--format", "html", "--out", str(out)]) == 0
    page = out.read_text()
    checker = _Checker()
    checker.feed(page)
    checker.close()
    assert checker.stack == []
    text = " ".join(checker.text)
    for cell in (_row(md, "li2017-maml-k5")[5], _row(md, "finn-k5", "maml-k5", "maml")[5],
                 "Li et al. 2017, Table 1"):
        assert cell in text
    for src in re.findall(r'<img src="([^"]+)"', page):
        assert (tmp_path / src).is_file()


def test_reuses_the_suite_reports_netcdf(results, md, tmp_path):
    from scimeta.train.suite_report import write_report

    write_report(results / "finn-smoke")
    again = build_report(results, tmp_path / "again.md").read_text()
    assert "tables read from report.nc" in again
    row = _row(md, "finn-k5", "maml-k5", "maml", "sgd")
    assert _row(again, "finn-k5", "maml-k5", "maml", "sgd") == row


def test_no_matplotlib_is_one_line(results, tmp_path, monkeypatch):
    import scimeta.report._document as document

    monkeypatch.setattr(document, "have_matplotlib", lambda: False)
    text = build_report(results, tmp_path / "plain.md").read_text()
    assert "Plots skipped: matplotlib is not installed" in text
    assert ".png" not in text


def test_no_results_is_a_clear_error(tmp_path, capsys):
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    with pytest.raises(RunError, match=r"nothing-here.*no results"):
        build_report(empty)
    assert main(["report", str(empty)]) == 2
    assert str(empty) in capsys.readouterr().err


def test_registry_rows_are_complete():
    for key, p in PUBLISHED.items():
        assert p.key == key and p.source and p.cite and math.isfinite(p.value)
    with pytest.raises(UnknownNameError, match="li2017-maml-k5"):
        get("li2017-maml-k6")


def test_registry_rows_match_families_that_exist():
    """A row matched on a family the registry does not know would never be shown."""
    from scimeta import registry

    known = set(registry.names())
    for p in PUBLISHED.values():
        fam = p.match.get("family")
        if fam is not None:
            assert fam in known, (p.key, fam)


def test_folder_without_status_and_a_bad_report_table(results, tmp_path):
    import json
    import shutil

    from scimeta.errors import ConfigError

    nc = results / "finn-smoke" / "runs" / "maml-k5" / "evaluation" / "finn-k5.nc"
    folder = tmp_path / "loose" / "runs" / "maml-k5" / "evaluation"
    folder.mkdir(parents=True)
    shutil.copy(nc, folder)
    text = build_report(tmp_path / "loose").read_text()
    ds = _nc(results, "maml-k5", "finn-k5")
    row = _row(text, "finn-k5", "maml-k5", "maml", "sgd")
    at = ds.sel(init="maml", optimizer="sgd", budget=int(ds["budget"].values[-1]))
    assert float(row[5]) == pytest.approx(float(at["median_mse"]), rel=5e-4)
    suite = tmp_path / "bad.toml"
    suite.write_text(SMOKE.read_text().replace("published =", "publshed ="))
    (tmp_path / "loose" / "suite.json").write_text(json.dumps({"suite": str(suite)}))
    with pytest.raises(ConfigError, match="publshed"):
        build_report(tmp_path / "loose")


def test_forecasting_results_json_is_reported_beside_leads(tmp_path):
    """A LEADS-protocol results.json alone makes a report: the LEADS grid's in-domain
    rows carry the published LEADS figure and our ratio to it."""
    import json

    from scimeta.report import build_report
    from scimeta.report.published import PUBLISHED

    pub = PUBLISHED["leads2021-lotka-volterra"]
    stat = {"mean": 0.5 * pub.value, "std": 1e-4, "std_env": 5e-5, "n": 320, "diverged": 0}
    rows = [{"grid": "leads", "set": "in-domain", "init": "context", "adapted": "context",
             "none": stat, "tuned": stat},
            {"grid": "coda", "set": "new env", "init": "maml", "adapted": "all",
             "none": stat, "tuned": {**stat, "mean": 3 * pub.value}}]
    (tmp_path / "lv").mkdir()
    (tmp_path / "lv" / "results.json").write_text(json.dumps({"rows": rows, "log": {
        "system": "lotka-volterra", "family": "lotka_volterra",
        "solver_preset": "published", "level": "full"}}))
    md = build_report(tmp_path).read_text()
    assert "Forecasting protocol: lotka-volterra (published solver data)" in md
    line = next(x for x in md.splitlines() if x.startswith("| leads | in-domain | context"))
    assert "0.5 (at or below)" in line and pub.cite in line
    coda = next(x for x in md.splitlines() if x.startswith("| coda | new env | maml"))
    assert coda.rstrip().endswith("|  |  |")  # no published figure for that grid


def _forecast_run(folder: Path, log: dict) -> None:
    import json

    stat = {"mean": 1e-3, "std": 1e-4, "std_env": 5e-5, "n": 8, "diverged": 0}
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps({"rows": [
        {"grid": "leads", "set": "in-domain", "init": "context", "adapted": "context",
         "none": stat, "tuned": stat}], "log": log}))


def test_forecasting_report_names_the_command_that_produced_the_run(tmp_path):
    """The recorded argv is the command; results without one (written before it was
    recorded) get every recorded argument back, so options such as the augmentation,
    the step counts and the seed are never dropped from the report."""
    from scimeta.report._forecast import command

    argv = ["--system", "navier-stokes", "--augment", "forcing", "--seed", "1"]
    _forecast_run(tmp_path / "a", {"system": "navier-stokes", "argv": argv})
    md = build_report(tmp_path / "a").read_text()
    assert "`python bench/leads_protocol.py --system navier-stokes --augment forcing " \
           "--seed 1`" in md
    args = {"system": "navier-stokes", "out": "/x", "smoke": False, "quick": False,
            "seed": 1, "augment": "forcing", "steps": "joint=1,context=15000",
            "hidden": None, "teacher_forcing": "", "solver_preset": "accurate"}
    cmd = command({"system": "navier-stokes", "args": args, "level": "full"}, Path("/x/r"))
    assert cmd == ["python", "bench/leads_protocol.py", "--system", "navier-stokes",
                   "--out", "/x", "--seed", "1", "--augment", "forcing", "--steps",
                   "joint=1,context=15000", "--solver-preset", "accurate"]
    old = command({"system": "lotka-volterra", "solver_preset": "published",
                   "level": "smoke"}, Path("/r/results.json"))
    assert old == ["python", "bench/leads_protocol.py", "--system", "lotka-volterra",
                   "--solver-preset", "published", "--smoke", "--out", "/r"]


def test_forecasting_report_plots_each_forecast_error_file(tmp_path):
    """A forecast-<grid>-<set>.nc beside results.json becomes one figure (PNG written,
    linked relative to the document)."""
    pytest.importorskip("matplotlib")
    import xarray as xr

    _forecast_run(tmp_path / "run", {"system": "lotka-volterra", "argv": ["--smoke"]})
    err = np.full((1, 2, 4, 5), 1e-3) * np.arange(5)
    dims = ("row", "env", "traj", "time")
    xr.Dataset({"sq_error_none": (dims, 2 * err), "sq_error_tuned": (dims, err)},
               coords={"init": ("row", ["context"]), "adapted": ("row", ["context"]),
                       "time": ("time", np.arange(5.0))},
               attrs={"system": "lotka-volterra", "grid": "leads", "set": "in-domain"}
               ).to_netcdf(tmp_path / "run" / "forecast-leads-in-domain.nc",
                           engine="h5netcdf")
    doc = build_report(tmp_path, out=tmp_path / "doc" / "r.md")
    links = re.findall(r"!\[forecast error against time, forecast-leads-in-domain\]\((.+?)\)",
                       doc.read_text())
    assert len(links) == 1 and (doc.parent / links[0]).stat().st_size > 1000
