"""The distribution ships every package, the built-in families included."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def _declared() -> tuple[set[str], dict[str, str]]:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return set(cfg["packages"]), cfg["package-dir"]


def test_every_package_folder_is_declared():
    packages, package_dir = _declared()
    found = {"scimeta.problems"}
    for init in (ROOT / "scimeta").rglob("__init__.py"):
        rel = init.parent.relative_to(ROOT)
        found.add(".".join(rel.parts))
    assert found == packages
    assert package_dir["scimeta.problems"] == "problems"


def test_problems_import_as_part_of_scimeta():
    import scimeta.problems

    assert Path(scimeta.problems.__file__).parent.name == "problems"
    assert "oscillator" in scimeta.problems.names()


@pytest.mark.slow
def test_wheel_contains_the_families(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("scimeta-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "scimeta/problems/oscillator.py" in names
    assert "scimeta/data/schema.py" in names
    assert not any(n.startswith("problems/") for n in names)
