"""The ``solver_preset`` of a generation: the family's solver, or the published protocols'
RK45 at scipy's default tolerances (LEADS/CoDA)."""

from __future__ import annotations

import dataclasses
import json

import h5py
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from scimeta import registry
from scimeta.cli import main
from scimeta.data import GenerationConfig, generate
from scimeta.data.info import summarize
from scimeta.data.validate import notes, validate
from scimeta.errors import ConfigError

CFG = GenerationConfig("oscillator", "train", tasks=5, seed=4, support=4, query=6,
                       dtype="float64")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("preset")
    acc = generate(CFG, root / "accurate.h5")
    pub = generate(dataclasses.replace(CFG, solver_preset="published"), root / "published.h5")
    return acc, pub


def _read(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][:] for k in ("u", "params", "y0", "time")} | {
            "attrs": dict(f.attrs)}


def test_published_differs_from_accurate_by_an_rtol_1e3_amount(pair):
    acc, pub = (_read(p) for p in pair)
    np.testing.assert_array_equal(acc["params"], pub["params"])  # same tasks
    np.testing.assert_array_equal(acc["y0"], pub["y0"])
    scale = np.abs(acc["u"]).max()
    diff = np.abs(pub["u"] - acc["u"]).max() / scale
    assert 1e-8 < diff < 1e-1, diff


def test_published_equals_a_direct_rk45_call(pair):
    pub = _read(pair[1])
    fam = registry.get("oscillator")
    i = 2
    p = tuple(float(v) for v in pub["params"][i])
    t = pub["time"]
    sol = solve_ivp(lambda tt, yy: list(fam.rhs(tt, tuple(yy), p, np)), (t[0], t[-1]),
                    pub["y0"][i], t_eval=t, method="RK45")
    np.testing.assert_allclose(pub["u"][i], sol.y.T, rtol=0, atol=1e-12)


def test_provenance_records_the_preset(pair):
    acc, pub = (_read(p)["attrs"] for p in pair)
    assert acc["solver_preset"] == "accurate"
    assert json.loads(acc["solver"]) == registry.get("oscillator").solver.__dict__
    assert "solver_preset" not in json.loads(acc["generator_config"])
    sv = json.loads(pub["solver"])
    assert (pub["solver_preset"], sv["method"], sv["rtol"], sv["atol"], sv["preset"]) == (
        "published", "RK45", 1e-3, 1e-6, "published")
    assert "DOP853" in sv["note"]  # the family's own solver is named
    cfg = json.loads(pub["generator_config"])
    assert cfg["solver_preset"] == "published"
    assert cfg["solver"] == {"method": "RK45", "rtol": 1e-3, "atol": 1e-6}


def test_published_store_is_valid_and_reported(pair, capsys):
    assert validate(pair[1]) == []
    assert any("solver preset published: RK45 rtol=0.001" in n for n in notes(pair[1]))
    assert summarize(pair[1])["solver_preset"] == "published"
    assert main(["validate", str(pair[1])]) == 0
    assert "solver preset published" in capsys.readouterr().out


def test_unsupported_family_names_it_and_the_supported_ones(tmp_path):
    cfg = GenerationConfig("burgers", "train", tasks=2, solver_preset="published")
    with pytest.raises(ConfigError, match=r"(?s)'published'.*family 'burgers'.*oscillator"):
        generate(cfg, tmp_path / "b.h5")
    assert not list(tmp_path.iterdir())


def test_bad_preset_and_resume_with_another_preset(pair, tmp_path):
    with pytest.raises(ConfigError, match=r"solver_preset='fast'.*accurate, published"):
        generate(dataclasses.replace(CFG, solver_preset="fast"), tmp_path / "x.h5")
    with pytest.raises(ConfigError, match=r"generated with solver_preset='accurate', "
                                          r"not solver_preset='published'"):
        generate(dataclasses.replace(CFG, solver_preset="published"), pair[0], resume=True)


def test_cli_solver_preset(tmp_path):
    out = tmp_path / "p.h5"
    assert main(["generate", "lotka_volterra", "--regime", "leads", "--tasks", "3",
                 "--out", str(out), "--support", "5", "--query", "10",
                 "--solver-preset", "published"]) == 0
    with h5py.File(out, "r") as f:
        assert f.attrs["solver_preset"] == "published"


def test_dataset_config_takes_the_preset_and_compression(tmp_path):
    from scimeta.data import manifest

    (tmp_path / "config.toml").write_text(
        'family = "lotka_volterra"\nsolver_preset = "published"\nsupport = 5\nquery = 10\n'
        '[splits.train]\nregime = "leads"\ntasks = 10\ncompression = "lzf"\n')
    gc = manifest.split_configs(manifest.load_config(tmp_path))["train"]
    assert (gc.solver_preset, gc.compression) == ("published", "lzf")
