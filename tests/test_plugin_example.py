"""examples/duffing_plugin: a lab's own family, found through its entry point and
passing the same contract as the built-ins, from its source folder and installed."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from scimeta import registry
from scimeta.testing import assert_family_contract

PLUGIN = Path(__file__).resolve().parents[1] / "examples" / "duffing_plugin"


@pytest.fixture
def clean_registry(monkeypatch):
    """Undo whatever a test adds: the cached family, the imported plugin modules."""
    yield monkeypatch
    registry._loaded.pop("duffing", None)
    for mod in [m for m in sys.modules if m.split(".")[0] == "scimeta_duffing"]:
        del sys.modules[mod]


def test_entry_point_declared_in_the_source_folder_is_found(clean_registry) -> None:
    """The entry point of the example's pyproject.toml, served as if installed."""
    declared = tomllib.loads((PLUGIN / "pyproject.toml").read_text(encoding="utf-8"))
    group = declared["project"]["entry-points"][registry.ENTRY_POINT_GROUP]
    assert group == {"duffing": "scimeta_duffing:Duffing"}
    eps = [EntryPoint(k, v, registry.ENTRY_POINT_GROUP) for k, v in group.items()]
    clean_registry.syspath_prepend(str(PLUGIN / "src"))
    clean_registry.setattr(registry, "entry_points", lambda group: eps if
                           group == registry.ENTRY_POINT_GROUP else [])
    assert "duffing" in registry.names()
    fam = registry.get("duffing")
    assert type(fam).__module__ == "scimeta_duffing.duffing"
    report = assert_family_contract("duffing")  # full mode: every regime of the split
    assert report.passed and len(report.checks) == 8


def _install(tmp_path: Path) -> Path:
    """``pip install --no-deps --target`` of a copy of the example (pip builds in the
    source tree; the copy keeps build files out of the checkout). ~3 s, offline."""
    src = shutil.copytree(PLUGIN, tmp_path / "src", ignore=shutil.ignore_patterns(
        "__pycache__", "*.egg-info", "build"))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index",
                    "--no-build-isolation", "--quiet", "--target", str(target), str(src)],
                   check=True, capture_output=True, timeout=300)
    return target


def test_installed_plugin_is_found_through_its_entry_point(tmp_path, clean_registry) -> None:
    target = _install(tmp_path)
    assert (target / "scimeta_duffing" / "duffing.py").exists()
    assert "duffing" not in registry.names()
    clean_registry.syspath_prepend(str(target))
    importlib.invalidate_caches()
    assert "duffing" in registry.names()
    fam = registry.get("duffing")
    assert Path(sys.modules[type(fam).__module__].__file__).is_relative_to(target)
    assert assert_family_contract("duffing", quick=True).passed


@pytest.mark.slow
def test_the_plugins_own_tests_pass_when_installed(tmp_path) -> None:
    """The example's tests/ (contract via scimeta.testing, energy balance, discovery),
    run by pytest in a fresh process with the installed plugin on the path."""
    target = _install(tmp_path)
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "--rootdir", str(PLUGIN), str(PLUGIN / "tests")], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "5 passed" in out.stdout, out.stdout
