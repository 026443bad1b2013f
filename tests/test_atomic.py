"""Atomic writes (scimeta.runtime.atomic): all or nothing, unique temporaries."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import xarray as xr

from scimeta.runtime.atomic import (
    atomic_path,
    save_figure,
    write_bytes,
    write_json,
    write_netcdf,
    write_text,
)


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if ".tmp" in p.name]


def test_success_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    write_text(target, "new")
    assert target.read_text() == "new"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644
    write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    write_json(tmp_path / "b.json", {"z": 1, "a": 2}, sort_keys=True)
    assert (tmp_path / "b.json").read_text() == '{\n  "a": 2,\n  "z": 1\n}\n'
    assert _leftovers(tmp_path) == []


def test_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="mid-write"):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("mid-write")
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_interrupt_keeps_the_old_file(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target, fsync=True) as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt
    assert target.read_text() == "old" and _leftovers(tmp_path) == []


def test_temporaries_are_unique_and_keep_the_suffix(tmp_path):
    target = tmp_path / "plot.png"
    with atomic_path(target) as first, atomic_path(target) as second:
        assert first != second
        assert first.parent == second.parent == tmp_path
        assert first.suffix == second.suffix == ".png"
        first.write_text("1")
        second.write_text("2")
    assert target.read_text() == "1"  # the outer block renames last and wins, whole


def test_netcdf_round_trip(tmp_path):
    ds = xr.Dataset({"v": ("i", np.arange(4.0))}, attrs={"note": "x"})
    path = write_netcdf(ds, tmp_path / "d.nc")
    with xr.open_dataset(path, engine="h5netcdf") as back:
        np.testing.assert_array_equal(back["v"].values, ds["v"].values)
        assert back.attrs["note"] == "x"
    assert _leftovers(tmp_path) == []


def test_figure_format_follows_the_target_suffix(tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))
    fig.add_subplot().plot([0, 1])
    path = save_figure(fig, tmp_path / "f.png", dpi=20)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _leftovers(tmp_path) == []
