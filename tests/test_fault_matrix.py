"""The fault matrix: every command on a table of bad inputs.

Each row runs one command in-process (``scimeta.cli.main``) on one bad input and asserts
exit status 2 (``validate``: 1, its documented "invalid" status) and exactly one line
``scimeta: error: ...`` naming the problem, never a traceback. Rows marked
``untouched`` also check that nothing was created or changed. Grow the tables with
every new failure found.
"""

from __future__ import annotations

import os
import shutil
import sys
import tomllib
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from scimeta.cli import main
from scimeta.data import GenerationConfig, generate
from scimeta.runtime import load_checkpoint, save_checkpoint
from scimeta.runtime.config import dump_toml, from_dict, load_toml, to_dict
from scimeta.runtime.seeding import rng_state
from scimeta.train import TrainConfig

CFG = """\
[data]
train = "{train}"
[data.validation]
"held out" = "{train}"
[model]
hidden = [8]
[meta]
inner_lr = 0.05
inner_steps = 2
meta_batch = 4
baselines = []
[optim]
lr = 0.01
iterations = {iterations}
[run]
checkpoint_every = 1
validate_every = 2
log_every = 1
"""

READ_ONLY = Path("/sys")  # a folder nobody can write in, not even root


def _read_only_ok() -> bool:
    probe = READ_ONLY / "scimeta-fault-matrix"
    try:
        probe.mkdir()
    except OSError:
        return READ_ONLY.is_dir()
    probe.rmdir()
    return False


needs_read_only = pytest.mark.skipif(not _read_only_ok(), reason="no read-only location")


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Path:
    """A training store, a trained 2-iteration run, a config and a support CSV."""
    d = tmp_path_factory.mktemp("faults")
    generate(GenerationConfig("oscillator", "unforced-train", tasks=12, support=6, query=12),
             d / "tr.h5")
    (d / "cfg.toml").write_text(CFG.format(train=d / "tr.h5", iterations=2))
    assert main(["-q", "train", str(d / "cfg.toml"), "--run-dir", str(d / "run")]) == 0
    (d / "obs.csv").write_text("t,x,v\n0,0.5,0.0\n1,0.2,-0.4\n2,-0.1,-0.3\n")
    (d / "binary").write_bytes(bytes(range(256)) * 4)
    (d / "adir").mkdir()
    return d


def _one_error_line(capsys, args: list[str], status: int = 2) -> str:
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code == status, (args, err)
    lines = [ln for ln in err.splitlines() if not ln.startswith(("INFO ", "WARNING "))]
    assert len(lines) == 1 and lines[0].startswith("scimeta: error: "), err
    assert "Traceback" not in err
    return lines[0]


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


# ---- generate ---------------------------------------------------------------------

GEN = ["generate", "oscillator", "--regime", "train", "--tasks", "4"]
GENERATE_CASES = {
    "out-dot": (["--out", "."], "is a directory"),
    "out-dir-overwrite": (["--out", "{d}/adir", "--overwrite"], "is a directory"),
    "out-dir-resume": (["--out", "{d}/adir", "--resume"], "is a directory"),
    "out-missing-folder": (["--out", "{d}/nope/x.h5"], "does not exist"),
    "tasks-zero": (["--out", "{d}/g.h5", "--tasks", "0"], "--tasks must be >= 1"),
    "tasks-negative": (["--out", "{d}/g.h5", "--tasks", "-3"], "--tasks must be >= 1"),
    "tasks-huge": (["--out", "{d}/g.h5", "--tasks", "1000000000"], "--skip-space-check"),
    "workers-zero": (["--out", "{d}/g.h5", "--workers", "0"], "--workers must be"),
    "seed-negative": (["--out", "{d}/g.h5", "--seed", "-1"], "--seed must be >= 0"),
    "param-twice": (["--out", "{d}/g.h5", "--param", "omega0=1:2", "--param", "omega0=1.5"],
                    "given more than once"),
    "param-inverted": (["--out", "{d}/g.h5", "--param", "zeta=0.5:0.1"], "inverted"),
    "param-text": (["--out", "{d}/g.h5", "--param", "zeta"], "NAME=LOW:HIGH"),
    "support-zero": (["--out", "{d}/g.h5", "--support", "0"], "must be >= 1"),
    "exists": (["--out", "{d}/tr.h5"], "exists; pass --resume"),
    "resume-other-config": (["--out", "{d}/tr.h5", "--resume"], "generated with"),
    "resume-junk": (["--out", "{d}/binary", "--resume"], "not a readable HDF5 file"),
}


@pytest.mark.parametrize("case", list(GENERATE_CASES))
def test_generate_bad_input(env, capsys, case):
    extra, needle = GENERATE_CASES[case]
    before = _snapshot(env)
    cwd = os.getcwd()
    os.chdir(env)
    try:
        line = _one_error_line(capsys, [*GEN, *(a.format(d=env) for a in extra)])
    finally:
        os.chdir(cwd)
    assert needle in line
    assert _snapshot(env) == before, "a refused generate must change nothing"


@needs_read_only
def test_generate_read_only_location(capsys):
    line = _one_error_line(capsys, [*GEN, "--out", str(READ_ONLY / "x.h5")])
    assert "cannot write in" in line


# ---- validate and info ----------------------------------------------------------

def _broken(env: Path, name: str, edit) -> Path:
    path = env / f"{name}.h5"
    if not path.exists():
        shutil.copy(env / "tr.h5", path)
        with h5py.File(path, "a") as f:
            edit(f)
    return path


def _shrink_u(f):
    data = f["u"][:6]
    del f["u"]
    f.create_dataset("u", data=data, chunks=(1, *data.shape[1:]), compression="gzip")


BROKEN = {
    "family-unknown": (lambda f: f.attrs.__setitem__("family", "nosuch"), "not a known task"),
    "complete-yes": (lambda f: f.attrs.__setitem__("complete", "yes"), "allowed: 0 or 1"),
    "schema-text": (lambda f: f.attrs.__setitem__("schema_version", "abc"), "not an integer"),
    "u-short": (_shrink_u, "u has shape (6,"),
    "bounds-broken": (lambda f: f.attrs.__setitem__("param_bounds", "[1"), "param_bounds"),
    "solver-broken": (lambda f: f.attrs.__setitem__("solver", "[]"), "solver"),
    "sampling-broken": (lambda f: f.attrs.__setitem__("sampling", '{"rule": 3}'), "sampling"),
    "regime-traversal": (lambda f: f.attrs.__setitem__("regime", "../../../X"),
                         "not a safe name"),
    "regime-absolute": (lambda f: f.attrs.__setitem__("regime", "/etc/X"), "not a safe name"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_validate_names_broken_attributes(env, capsys, case):
    edit, needle = BROKEN[case]
    path = _broken(env, case, edit)
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert all(ln.startswith(f"{path}: ") for ln in err.strip().splitlines())


INFO_BROKEN = ("complete-yes", "schema-text", "u-short", "bounds-broken", "solver-broken",
               "sampling-broken")


@pytest.mark.parametrize("case", INFO_BROKEN)
def test_info_on_broken_stores_is_one_line(env, capsys, case):
    path = _broken(env, case, BROKEN[case][0])
    _one_error_line(capsys, ["info", str(path)])


@pytest.mark.parametrize("target", ["missing.h5", "binary", "adir"])
def test_info_on_unreadable_files(env, capsys, target):
    _one_error_line(capsys, ["info", str(env / target)])


# ---- dataset ----------------------------------------------------------------------

DATASET_CASES = {
    "split-traversal": ('family = "oscillator"\n[splits."../../Y"]\nregime = "train"\n'
                        'tasks = 2\n', "cannot be used as a file name"),
    "split-absolute": ('family = "oscillator"\n[splits."/tmp/Y"]\nregime = "train"\n'
                       'tasks = 2\n', "cannot be used as a file name"),
    "tasks-text": ('family = "oscillator"\n[splits.a]\nregime = "train"\ntasks = "x"\n',
                   "tasks must be an integer"),
    "no-regime": ('family = "oscillator"\n[splits.a]\ntasks = 3\n', "needs regime"),
    "splits-scalar": ('family = "oscillator"\nsplits = 3\n', "splits must be tables"),
    "binary": (None, "not a TOML file"),
}


@pytest.mark.parametrize("case", list(DATASET_CASES))
def test_dataset_build_bad_config(tmp_path, capsys, case):
    text, needle = DATASET_CASES[case]
    folder = tmp_path / "ds"
    folder.mkdir()
    if text is None:
        (folder / "config.toml").write_bytes(bytes(range(256)))
    else:
        (folder / "config.toml").write_text(text)
    assert needle in _one_error_line(capsys, ["dataset", "build", str(folder)])
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["config.toml", "ds"]


def test_dataset_missing_folder_and_manifest(tmp_path, capsys):
    assert "not a directory" in _one_error_line(capsys, ["dataset", "build",
                                                         str(tmp_path / "nope")])
    (tmp_path / "config.toml").write_text('family = "oscillator"\n[splits.a]\n'
                                          'regime = "train"\ntasks = 2\n')
    assert "does not exist" in _one_error_line(capsys, ["dataset", "check", str(tmp_path)])


# ---- train ------------------------------------------------------------------------

def _config(env: Path, tmp: Path, edit=None, train: Path | None = None) -> Path:
    text = CFG.format(train=train or env / "tr.h5", iterations=2)
    if edit:
        text = edit(text)
    path = tmp / "c.toml"
    path.write_text(text)
    return path


def _nan_store(env: Path) -> Path:
    def poison(f):
        u = f["u"][3]
        u[5, 0] = np.nan
        f["u"][3] = u
    return _broken(env, "nan-task", poison)


TRAIN_CASES = {
    "device-unknown": (lambda t: t.replace("[run]\n", '[run]\ndevice = "tpu9"\n'),
                       "run.device = 'tpu9'"),
    "hidden-empty": (lambda t: t.replace("hidden = [8]", "hidden = []"), "model.hidden"),
    "label-traversal": (lambda t: t.replace('"held out"', '"../x"'), "cannot be used as a"),
    "typo": (lambda t: t.replace("inner_lr", "inner_lrr"), "did you mean 'inner_lr'"),
    "store-missing": (lambda t: t.replace("tr.h5", "nope.h5"), "does not exist"),
    "store-binary": (lambda t: t.replace("tr.h5", "binary"), "not a readable HDF5"),
}


@pytest.mark.parametrize("case", list(TRAIN_CASES))
def test_train_bad_config_creates_nothing(env, tmp_path, capsys, case):
    edit, needle = TRAIN_CASES[case]
    cfg = _config(env, tmp_path, edit)
    line = _one_error_line(capsys, ["train", str(cfg), "--run-dir", str(tmp_path / "run")])
    assert needle in line
    assert not (tmp_path / "run").exists(), "nothing is created before every check passed"


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_train_cuda_without_cuda_creates_nothing(env, tmp_path, capsys):
    cfg = _config(env, tmp_path, lambda t: t.replace("[run]\n", '[run]\ndevice = "cuda"\n'))
    line = _one_error_line(capsys, ["train", str(cfg), "--run-dir", str(tmp_path / "run")])
    assert "run.device = 'cuda'" in line and not (tmp_path / "run").exists()


def test_train_nan_task_is_named_before_anything_is_created(env, tmp_path, capsys):
    cfg = _config(env, tmp_path, train=_nan_store(env))
    line = _one_error_line(capsys, ["train", str(cfg), "--run-dir", str(tmp_path / "run")])
    assert "task 3 is marked ok but holds non-finite values" in line
    assert not (tmp_path / "run").exists()


def test_train_corrupted_chunk_is_one_line(env, tmp_path, capsys):
    path = env / "corrupt.h5"
    shutil.copy(env / "tr.h5", path)
    with h5py.File(path, "r") as f:
        offset = f["u"].id.get_chunk_info(2).byte_offset
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(b"\xff" * 64)
    cfg = _config(env, tmp_path, lambda t: t.replace("[data.validation]",
                                                     "in_memory = false\n[data.validation]"),
                  train=path)
    line = _one_error_line(capsys, ["train", str(cfg), "--run-dir", str(tmp_path / "run")])
    assert "damaged" in line and not (tmp_path / "run").exists()


def test_train_binary_and_missing_config(env, tmp_path, capsys):
    for cfg, needle in ((env / "binary", "not a TOML file"), (env / "adir", "directory"),
                        (tmp_path / "none.toml", "does not exist")):
        line = _one_error_line(capsys, ["train", str(cfg), "--run-dir", str(tmp_path / "r")])
        assert needle in line


def test_train_run_dir_problems(env, tmp_path, capsys):
    cfg = _config(env, tmp_path)
    line = _one_error_line(capsys, ["train", str(cfg), "--run-dir", str(env / "tr.h5")])
    assert "cannot create run directory" in line
    line = _one_error_line(capsys, ["train", str(cfg), "--run-dir", str(env / "run")])
    assert "exists; pass --resume" in line
    line = _one_error_line(capsys, ["train", str(cfg), "--run-dir", str(tmp_path / "r"),
                                    "--allow-config-change", "optim.lr"])
    assert "pass --resume" in line


@needs_read_only
def test_train_read_only_run_dir(env, tmp_path, capsys):
    cfg = _config(env, tmp_path)
    line = _one_error_line(capsys, ["train", str(cfg), "--run-dir", str(READ_ONLY / "r")])
    assert "cannot create run directory" in line


def _interrupted_run(env: Path, tmp: Path, **over) -> Path:
    """A copy of the trained run made to look stopped at iteration 1 of 2 (or with
    ``over`` replacing checkpoint entries)."""
    run = tmp / "run"
    shutil.copytree(env / "run", run)
    params = load_checkpoint(run / "inits" / "maml.pt")["params"]
    (run / "inits" / "maml.pt").unlink()
    opt = torch.optim.Adam(list(params.values()), lr=0.01)
    payload = {"phase": "maml", "iteration": 1, "optimizer": opt.state_dict(),
               "params": params, "rng": rng_state(np.random.default_rng(0))}
    payload.update(over)
    save_checkpoint(run / "checkpoint.pt", {k: v for k, v in payload.items()
                                            if v is not None})
    return run


CHECKPOINT_CASES = {
    "iteration-huge": ({"iteration": 10**9}, "outside [0, optim.iterations = 2]"),
    "iteration-text": ({"iteration": "3"}, "outside [0"),
    "phase-foreign": ({"phase": "nosuch"}, "not one this run trains"),
    "rng-missing": ({"rng": None}, "lacks 'rng'"),
    "shapes-wrong": ({"params": {"net.0.weight": torch.zeros(3)}}, "does not fit"),
    "optimizer-broken": ({"optimizer": {"x": 1}}, "usable optimizer"),
}


@pytest.mark.parametrize("case", list(CHECKPOINT_CASES))
def test_resume_refuses_a_broken_checkpoint_before_changing_anything(env, tmp_path, capsys,
                                                                     case):
    over, needle = CHECKPOINT_CASES[case]
    run = _interrupted_run(env, tmp_path, **over)
    before = _snapshot(run)
    line = _one_error_line(capsys, ["train", str(env / "cfg.toml"), "--run-dir", str(run),
                                    "--resume"])
    assert needle in line and "remove" in line
    assert _snapshot(run) == before


def test_resume_refuses_a_truncated_init(env, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(env / "run", run)
    (run / "inits" / "maml.pt").write_bytes(b"PK\x03\x04broken")
    line = _one_error_line(capsys, ["train", str(env / "cfg.toml"), "--run-dir", str(run),
                                    "--resume"])
    assert "maml.pt" in line and "train that init again" in line


def test_resume_with_changed_config_names_the_keys_and_the_flag(env, tmp_path, capsys):
    run = _interrupted_run(env, tmp_path)
    cfg = _config(env, tmp_path, lambda t: t.replace("lr = 0.01", "lr = 0.001"))
    base = ["train", str(cfg), "--run-dir", str(run), "--resume"]
    line = _one_error_line(capsys, base)
    assert "optim.lr 0.01 -> 0.001" in line and "--allow-config-change optim.lr" in line
    line = _one_error_line(capsys, [*base, "--allow-config-change", "optim.lrr"])
    assert "did you mean 'optim.lr'" in line
    hidden = _config(env, tmp_path, lambda t: t.replace("hidden = [8]", "hidden = [9]"))
    line = _one_error_line(capsys, ["train", str(hidden), "--run-dir", str(run), "--resume",
                                    "--allow-config-change", "model.hidden"])
    assert "cannot change on resume" in line


# ---- adapt ------------------------------------------------------------------------

ADAPT_CASES = {
    "out-txt": ({"out": "{d}/p.txt"}, "unknown suffix '.txt'"),
    "out-dir": ({"out": "{d}/adir"}, "is a directory"),
    "out-missing-folder": ({"out": "{d}/nope/p.csv"}, "does not exist"),
    "support-dir": ({"support": "{d}/adir"}, "is a directory"),
    "support-binary": ({"support": "{d}/binary"}, "not a text CSV"),
    "support-missing": ({"support": "{d}/nope.csv"}, "does not exist"),
    "time-nan": ({"csv": "t,x\nnan,0.5\n1,0.2\n"}, "missing or non-finite input"),
    "time-empty": ({"csv": "t,x\n,0.5\n1,0.2\n"}, "missing or non-finite input"),
    "values-all-nan": ({"csv": "t,x\n0,nan\n1,\n"}, "no observed value"),
    "value-inf": ({"csv": "t,x\n0,inf\n1,0.2\n"}, "infinite value"),
    "value-minus-inf": ({"csv": "t,x\n0,-inf\n1,0.2\n"}, "infinite value"),
    "values-huge": ({"csv": "t,x\n0,1e308\n1,1e308\n"}, "adaptation diverged"),
    "time-duplicate": ({"csv": "t,x\n0,0.5\n0,0.2\n"}, "appears more than once"),
    "time-outside": ({"csv": "t,x\n0,0.5\n50,0.2\n"}, "outside the grid"),
    "ragged": ({"csv": "t,x\n0,0.5,1\n"}, "ragged rows"),
    "text-value": ({"csv": "t,x\n0,abc\n"}, "non-numeric"),
    "column-unknown": ({"csv": "t,pressure\n0,1\n"}, "unknown columns"),
    "column-twice": ({"csv": "t,x,x\n0,1,2\n"}, "repeated columns"),
    "param-nan": ({"args": ["--param", "omega0=nan"]}, "a finite number"),
    "param-twice": ({"args": ["--param", "omega0=1", "--param", "omega0=2"]}, "each name"),
    "param-missing": ({"args": ["--param", "omega0=1"]}, "needs exactly"),
    "param-domain": ({"args": ["--param", "omega0=-1", "--param", "zeta=0.1", "--param", "F=0",
                               "--param", "Omega=1"]}, "outside its physical domain"),
    "init-traversal": ({"args": ["--init", "../../x"]}, "cannot be used as a file name"),
    "init-untrained": ({"args": ["--init", "fomaml"]}, "no trained init 'fomaml'"),
    "steps-negative": ({"args": ["--steps", "-1"]}, "--steps=-1"),
    "at-missing": ({"args": ["--at", "{d}/nope.csv"]}, "--at "),
    "at-nan": ({"at": "t\n0.5\nnan\n"}, "non-finite"),
}


@pytest.mark.parametrize("case", list(ADAPT_CASES))
def test_adapt_bad_input(env, tmp_path, capsys, case):
    spec, needle = ADAPT_CASES[case]
    support = str(env / "obs.csv")
    if "csv" in spec:
        (tmp_path / "s.csv").write_text(spec["csv"])
        support = str(tmp_path / "s.csv")
    support = spec.get("support", support)
    args = ["adapt", str(env / "run"), "--support", support.format(d=env),
            *(a.format(d=env) for a in spec.get("args", []))]
    if "out" in spec:
        args += ["--out", spec["out"].format(d=env)]
    if "at" in spec:
        (tmp_path / "at.csv").write_text(spec["at"])
        args += ["--at", str(tmp_path / "at.csv")]
    before = _snapshot(env)
    assert needle in _one_error_line(capsys, args)
    assert capsys.readouterr().out == ""
    assert _snapshot(env) == before


@needs_read_only
def test_adapt_read_only_out(env, capsys):
    line = _one_error_line(capsys, ["adapt", str(env / "run"), "--support",
                                    str(env / "obs.csv"), "--out", str(READ_ONLY / "p.csv")])
    assert "cannot write in" in line


# ---- evaluate and problems --------------------------------------------------------

EVALUATE_CASES = {
    "run-missing": (["{d}/nope", "--data", "{d}/tr.h5"], "not a scimeta run directory"),
    "label-unknown": (["{d}/run", "--regime", "nosuch"], "not in the run's"),
    "data-missing": (["{d}/run", "--data", "{d}/nope.h5"], "does not exist"),
    "data-dir": (["{d}/run", "--data", "{d}/adir"], "is a directory"),
    "data-binary": (["{d}/run", "--data", "{d}/binary"], "not a readable HDF5"),
}


@pytest.mark.parametrize("case", list(EVALUATE_CASES))
def test_evaluate_bad_input(env, capsys, case):
    args, needle = EVALUATE_CASES[case]
    assert needle in _one_error_line(capsys, ["evaluate", *(a.format(d=env) for a in args)])


def test_problems_unknown_family(capsys):
    assert "did you mean 'oscillator'" in _one_error_line(capsys, ["problems", "oscilator"])


# ---- configs written by scimeta read back equal ---------------------------------

def test_every_run_config_round_trips_through_its_toml(env):
    """The run's config.toml (a label with a space included) reads back equal, and every
    key the writer accepts survives a round trip."""
    saved = from_dict(TrainConfig, load_toml(env / "run" / "config.toml"))
    assert saved.data.validation == {"held out": str(env / "tr.h5")}
    assert saved.model.hidden == (8,) and saved.meta.baselines == ()
    tricky = {"data": {"train": 'a "quoted"\\path\n\t\x01é', "validation": {
        "held out": "x.h5", "a.b": "y", "": "z", "ü": "w", "=": "v"}},
        "empty": {}, "nested": {"a": {"b": {"c": [1, 2.5, -0.0, 1e300, "s", [True]]}}},
        "big": 2**62, "tiny": 5e-324, "inf": float("inf")}
    assert tomllib.loads(dump_toml(tricky)) == tricky
    cfg = from_dict(TrainConfig, {"data": {"train": "t.h5", "validation": {
        "held out": "a b.h5", "ext-2": "c.h5"}}, "meta": {"baselines": ["fomaml", "joint"]}})
    assert from_dict(TrainConfig, tomllib.loads(dump_toml(to_dict(cfg)))) == cfg


def test_the_cli_runs_without_tracebacks_in_a_fresh_interpreter(env):
    """One bad input through the real entry point (not just ``main``)."""
    import subprocess

    r = subprocess.run([sys.executable, "-m", "scimeta", "generate", "oscillator", "--regime",
                        "train", "--tasks", "2", "--out", "."], capture_output=True, text=True,
                       timeout=120, cwd=env)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert r.stderr.startswith("scimeta: error: ")
