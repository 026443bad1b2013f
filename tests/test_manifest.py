"""Dataset folders: config checking, build, manifest round trip."""

from __future__ import annotations

import h5py
import pytest

from scimeta.data import manifest
from scimeta.errors import ConfigError

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
