"""The command line: verbs work end to end and bad input is one line, exit 2."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import h5py
import pytest

from scimeta.cli import build_parser, main
from scimeta.cli.common import as_flags
from scimeta.cli.data_cmds import parse_bounds
from scimeta.data import GenerationConfig, generate
from scimeta.errors import ConfigError


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scimeta", *args], capture_output=True,
                          text=True, timeout=120)


def test_generate_validate_info_round_trip(tmp_path):
    out = tmp_path / "lv.h5"
    r = run("generate", "oscillator", "--regime", "test-interpolate", "--tasks", "12",
            "--seed", "2", "--support", "5", "--query", "20", "--workers", "2", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "ok 12" in r.stdout
    assert run("validate", str(out)).returncode == 0
    info = json.loads(run("info", str(out), "--json").stdout)
    assert info["family"] == "oscillator" and info["status_counts"]["ok"] == 12
    lo, hi = info["param_ranges_ok_tasks"]["omega0"]
    assert 1.25 <= lo <= hi <= 1.75
    text = run("info", str(out)).stdout
    assert "DOP853" in text and "rtol=1e-10" in text


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["generate", "nope", "--regime", "train", "--tasks", "2", "--out", "x.h5"],
         "unknown task family 'nope'"),
        (["generate", "oscillator", "--regime", "nope", "--tasks", "2", "--out", "x.h5"],
         "known: test-extrapolate"),
        (["generate", "oscillator", "--regime", "train", "--tasks", "2", "--out", "x.h5",
          "--param", "zeta=0.5:0.1"], "inverted"),
        (["generate", "oscillator", "--regime", "train", "--tasks", "0", "--out", "x.h5"],
         "--tasks must be >= 1"),
        (["info", "missing.h5"], "does not exist"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, monkeypatch, capsys, args, needle):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and err.count("\n") == 0 and "Traceback" not in err


def test_validate_reports_each_violation_and_exits_nonzero(tmp_path, osc_store):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(open(osc_store, "rb").read())
    with h5py.File(bad, "a") as f:
        f.attrs["complete"] = 0
        del f.attrs["seed"]
    r = run("validate", str(bad))
    assert r.returncode == 1
    assert "incomplete" in r.stderr and "'seed'" in r.stderr
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x89HDF\r\n")
    r = run("validate", str(junk))
    assert r.returncode == 1 and "not a readable HDF5 file" in r.stderr
    assert "Traceback" not in r.stderr


def test_existing_output_refused_then_overwritten(tmp_path, capsys):
    out = str(tmp_path / "o.h5")
    base = ["generate", "oscillator", "--regime", "train", "--tasks", "2", "--out", out]
    assert main(base) == 0
    assert main(base) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err
    assert "exists; pass --resume to continue it" in err and "resume=True" not in err
    assert main([*base, "--overwrite"]) == 0


def test_library_rerun_error_names_the_keywords(tmp_path):
    out = tmp_path / "o.h5"
    cfg = GenerationConfig("oscillator", "train", tasks=2)
    generate(cfg, out)
    with pytest.raises(ConfigError, match="pass resume=True to continue it or overwrite=True") as e:
        generate(cfg, out)
    assert "--" not in str(e.value)
    with pytest.raises(ConfigError, match="resume=True and overwrite=True exclude"):
        generate(cfg, out, resume=True, overwrite=True)


def test_as_flags_rewords_keywords_only():
    flags = {"resume": "--resume", "out": "--out", "update_manifest": "--update-manifest"}
    assert as_flags("out 'a' exists; pass resume=True", flags) == "--out 'a' exists; pass --resume"
    assert as_flags("pass update_manifest=True", flags) == "pass --update-manifest"
    assert as_flags("layout of 'output' resume", flags) == "layout of 'output' resume"


def test_problems_lists_families_with_parameters(capsys):
    assert main(["problems"]) == 0
    out = capsys.readouterr().out
    for name in ("oscillator", "lotka_volterra", "van_der_pol", "lorenz", "pendulum",
                 "glycolytic"):
        assert f"{name}:" in out
    assert "omega0" in out and "rad/s" in out
    assert main(["problems", "oscillator", "--json"]) == 0
    (d,) = json.loads(capsys.readouterr().out)
    assert [p["name"] for p in d["params"]] == ["omega0", "zeta", "F", "Omega"]


def test_parse_bounds():
    assert parse_bounds(["a=1:2", "b=3"]) == (("a", 1.0, 2.0), ("b", 3.0, 3.0))
    with pytest.raises(ConfigError, match="NAME=LOW:HIGH"):
        parse_bounds(["a:1"])


def test_parser_and_light_verbs_do_not_import_torch(osc_store):
    code = f"""
import sys
import scimeta.cli
scimeta.cli.build_parser()
assert scimeta.cli.main(["problems"]) == 0
assert scimeta.cli.main(["info", {str(osc_store)!r}]) == 0
assert scimeta.cli.main(["validate", {str(osc_store)!r}]) == 0
import scimeta
scimeta.OdeFamily, scimeta.problems.get("burgers")
heavy = sorted(m for m in ("torch", "xarray", "pandas") if m in sys.modules)
assert not heavy, heavy
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_every_option_of_every_subcommand_has_a_help_text():
    commands = _subcommands()
    assert {"problems", "generate", "quickstart", "adapt", "dataset"} <= set(commands)
    for name, parser in commands.items():
        for action in parser._actions:
            assert action.help and action.help.strip(), (name, action.dest)


@pytest.mark.parametrize(
    ("command", "needles"),
    [("quickstart", ["(default: scimeta-quickstart)", "(default: 4000", "(default: 1)"]),
     ("generate", ["(default: 10)", "(default: 100)", "(default: random)"]),
     ("adapt", ["(default: maml)", "CSV on stdout", "--at CSV"])],
)
def test_subcommand_help_shows_defaults(command, needles):
    text = " ".join(_subcommands()[command].format_help().split())
    for needle in needles:
        assert needle in text, needle
    assert "(default: None)" not in text and "(default: False)" not in text


def test_quickstart_help_states_the_configs_iterations():
    from scimeta.train.quickstart import DEFAULT

    text = " ".join(_subcommands()["quickstart"].format_help().split())
    assert f"(default: {DEFAULT['optim']['iterations']}," in text


@pytest.mark.parametrize("argv", [["generate", "oscillator"], ["nosuch"], [],
                                  ["evaluate", "run", "--data", "x.h5", "--steps", "two"]])
def test_usage_errors_are_one_line(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("scimeta: error: scimeta"), err


def test_a_closed_pipe_is_not_a_traceback():
    """`scimeta ... | head`: the reader leaves early; scimeta stops without a traceback."""
    code = ("import scimeta.cli.data_cmds as d\n"
            "d.cmd_problems = lambda args: print('x' * 1_000_000)\n"
            "from scimeta.cli import main\n"
            "raise SystemExit(main(['problems']))\n")
    proc = subprocess.run(f"'{sys.executable}' -c \"{code}\" | head -c 10", shell=True,
                          capture_output=True, text=True, timeout=60)
    assert proc.stdout == "x" * 10
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr


def test_quickstart_out_that_is_a_file_is_one_line(tmp_path, capsys):
    target = tmp_path / "a-file"
    target.write_text("x")
    assert main(["quickstart", "--out", str(target)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot create the output folder" in err[0]
