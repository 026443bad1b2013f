"""Boxes cut out of a regime at generation (``GenerationConfig.exclude``, ``scimeta
generate --exclude``, a suite store's ``exclude``): a band of the training range held
out, so that a validation regime inside the range is disjoint from training."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from scimeta import registry
from scimeta.cli import main
from scimeta.cli.data_cmds import parse_exclude
from scimeta.data import GenerationConfig, TaskReader, generate
from scimeta.errors import ConfigError
from scimeta.train.selection import check_disjoint
from scimeta.train.suite import _generation, load_suite

BAND = (("omega0", 2.0, 2.2),)


def _store(tmp_path, name, **kw):
    return generate(GenerationConfig("oscillator", tasks=kw.pop("tasks", 24), **kw),
                    tmp_path / f"{name}.h5")


def test_an_excluded_box_holds_no_task_and_is_recorded(tmp_path):
    path = _store(tmp_path, "holed", regime="unforced-train", exclude=(BAND,))
    w = TaskReader(path).params[:, 0]
    assert not ((w >= 2.0) & (w <= 2.2)).any()
    assert not ((w >= 1.25) & (w <= 1.75)).any()  # the regime's own hole stays
    with h5py.File(path) as f:
        regime = json.loads(f.attrs["regime_json"])
        config = json.loads(f.attrs["generator_config"])
    assert {"omega0": [2.0, 2.2]} in regime["exclude"]
    assert {"omega0": [1.25, 1.75]} in regime["exclude"]
    assert config["exclude"] == [[["omega0", 2.0, 2.2]]]
    # without one, the stored settings are as before the key existed
    assert "exclude" not in json.loads(GenerationConfig("oscillator", "train", 2).to_json())


def test_a_band_held_out_of_training_is_a_disjoint_validation_regime(tmp_path):
    fam = registry.get("oscillator")
    val = TaskReader(_store(tmp_path, "val", regime="unforced-train", tasks=8, seed=1,
                            bounds=BAND))
    assert ((val.params[:, 0] >= 2.0) & (val.params[:, 0] < 2.2)).all()
    held = TaskReader(_store(tmp_path, "held", regime="unforced-train", exclude=(BAND,)))
    whole = TaskReader(_store(tmp_path, "whole", regime="unforced-train"))
    test = TaskReader(_store(tmp_path, "test", regime="unforced-test-interpolate", tasks=8,
                             seed=2))
    v = (str(val.path), val.meta.attrs, val.params)
    check_disjoint(fam.params, v, {"train": (held.meta.attrs, held.params),
                                   "test": (test.meta.attrs, test.params)})
    with pytest.raises(ConfigError, match="not disjoint from the train store"):
        check_disjoint(fam.params, v, {"train": (whole.meta.attrs, whole.params)})


@pytest.mark.parametrize("exclude, match", [
    (((("nope", 0.0, 1.0),),), "unknown parameter 'nope'"),
    (((("omega0", 2.2, 2.0),),), "inverted"),
    (((),), "one or more"),
    (((("omega0", 2.0, 2.2), ("omega0", 2.3, 2.4)),), "one range"),
])
def test_bad_excluded_boxes_are_refused_before_work(tmp_path, exclude, match):
    with pytest.raises(ConfigError, match=match):
        generate(GenerationConfig("oscillator", "unforced-train", 2, exclude=exclude),
                 tmp_path / "x.h5")
    assert not list(tmp_path.iterdir())


def test_resuming_with_another_excluded_box_is_refused_and_named(tmp_path):
    path = _store(tmp_path, "x", regime="unforced-train", tasks=3)
    with pytest.raises(ConfigError, match=r"exclude=\(\), not exclude="):
        generate(GenerationConfig("oscillator", "unforced-train", 3, exclude=(BAND,)), path,
                 resume=True)


def test_the_flag_and_the_suite_key_give_the_same_config(tmp_path, capsys):
    assert parse_exclude(["omega0=2:2.2", "omega0=0.6:0.7,zeta=0.1"]) == (
        BAND, (("omega0", 0.6, 0.7), ("zeta", 0.1, 0.1)))
    with pytest.raises(ConfigError, match="--exclude"):
        parse_exclude(["omega0:2"])
    suite = tmp_path / "s.toml"
    suite.write_text('[stores.train]\nfamily = "oscillator"\nregime = "unforced-train"\n'
                     'tasks = 4\nexclude = [{ omega0 = [2.0, 2.2] }]\n')
    cfg = _generation(load_suite(suite), "train")
    assert cfg == GenerationConfig("oscillator", "unforced-train", 4, exclude=(BAND,))
    suite.write_text(suite.read_text().replace("[2.0, 2.2]", "[2.0]"))
    with pytest.raises(ConfigError, match=r"stores\.train\.exclude\[0\]\.omega0"):
        load_suite(suite)
    out = tmp_path / "cli.h5"
    assert main(["generate", "oscillator", "--regime", "unforced-train", "--tasks", "4",
                 "--out", str(out), "--exclude", "omega0=2:2.2"]) == 0
    with h5py.File(out) as f:
        assert json.loads(f.attrs["generator_config"])["exclude"] == [[["omega0", 2.0, 2.2]]]
    capsys.readouterr()
    assert np.isfinite(TaskReader(out).params).all()
