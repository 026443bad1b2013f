"""Dataset folders: config checking, build, manifest round trip."""

from __future__ import annotations

import json

import h5py
import pytest

from scimeta.data import manifest
from scimeta.errors import ConfigError, StoreError

CONFIG = """
name = "tiny"
family = "oscillator"
support = 4
query = 6
[splits.a]
regime = "train"
tasks = 3
seed = 1
[splits.b]
regime = "test-extrapolate"
tasks = 2
"""


def test_build_then_check_detects_changes(tmp_path):
    (tmp_path / "config.toml").write_text(CONFIG)
    manifest.build(tmp_path)
    assert manifest.check(tmp_path) == []
    with h5py.File(tmp_path / "a.h5", "a") as f:
        f["params"][0, 0] += 1e-9
    assert manifest.check(tmp_path) == ["a.h5: params differs from the manifest"]
    (tmp_path / "b.h5").unlink()
    assert "b.h5: missing" in manifest.check(tmp_path)[-1]


def test_the_shipped_standard_configs_resolve():
    from pathlib import Path

    root = Path(__file__).parents[1] / "datasets"
    folders = [p.parent for p in root.glob("*/config.toml")]
    assert folders
    for folder in folders:
        for cfg in manifest.split_configs(manifest.load_config(folder)).values():
            cfg.resolve()


@pytest.mark.parametrize(
    ("text", "match"),
    [(CONFIG + "colour = 1\n", "unknown key"), (CONFIG.replace("seed = 1", "sed = 1"),
                                                "split 'a' has unknown key"),
     ("name = 'x'\nfamily = 'oscillator'\n", "no \\[splits")],
)
def test_bad_configs(tmp_path, text, match):
    (tmp_path / "config.toml").write_text(text)
    with pytest.raises(ConfigError, match=match):
        manifest.build(tmp_path)


def test_build_verifies_an_existing_manifest_without_rewriting_it(tmp_path):
    (tmp_path / "config.toml").write_text(CONFIG)
    path = manifest.build(tmp_path)
    written = json.loads(path.read_text())
    assert set(written) == {"name", "content"}  # no file hashes: they change every build
    before = path.read_bytes()
    (tmp_path / "a.h5").unlink()
    assert manifest.build(tmp_path) == path  # rebuilt, verified, left as it was
    assert path.read_bytes() == before and manifest.check(tmp_path) == []
    edited = json.loads(before)
    edited["content"]["a.h5"]["u"] = "0" * 64
    path.write_text(json.dumps(edited))
    with pytest.raises(StoreError, match=r"a\.h5: u differs.*pass update_manifest=True"):
        manifest.build(tmp_path)
    assert json.loads(path.read_text()) == edited
    manifest.build(tmp_path, update_manifest=True)
    assert path.read_bytes() == before


def test_cli_dataset_build_names_its_flag(tmp_path, capsys):
    from scimeta.cli import main

    (tmp_path / "config.toml").write_text(CONFIG)
    assert main(["dataset", "build", str(tmp_path)]) == 0
    (tmp_path / "manifest.json").write_text('{"name": "tiny", "content": {"a.h5": {}}}')
    assert main(["dataset", "build", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "b.h5: not in the manifest" in err and "pass --update-manifest" in err
    assert main(["dataset", "build", str(tmp_path), "--update-manifest"]) == 0
    assert main(["dataset", "check", str(tmp_path)]) == 0


def test_check_without_a_manifest_is_one_clear_error(tmp_path):
    with pytest.raises(StoreError, match=r"manifest\.json' does not exist"):
        manifest.check(tmp_path)
