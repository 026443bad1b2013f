"""The ``compression`` option of a store: gzip (default), lzf, none; same values read back."""

from __future__ import annotations

import dataclasses
import json

import h5py
import numpy as np
import pytest

from scimeta.cli import main
from scimeta.data import GenerationConfig, TaskReader, generate, open_xarray
from scimeta.data.info import format_summary, summarize
from scimeta.data.shards import merge
from scimeta.data.validate import notes, validate
from scimeta.errors import ConfigError

CFG = GenerationConfig("oscillator", "unforced-train", tasks=6, seed=2, support=4, query=6)
VARS = ("u", "y0", "params", "seed", "status", "support_idx", "query_idx")
FILTERS = {"gzip": ("gzip", 4, True), "lzf": ("lzf", None, True), "none": (None, None, False)}


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("compression")
    return {c: generate(dataclasses.replace(CFG, compression=c), root / f"{c}.h5", unit_size=2)
            for c in FILTERS}


def _data(path) -> dict:
    with h5py.File(path, "r") as f:
        return {k: f[k][:] for k in VARS}


@pytest.mark.parametrize("compression", list(FILTERS))
def test_round_trip_reads_the_gzip_values(stores, compression):
    path = stores[compression]
    want, got = _data(stores["gzip"]), _data(path)
    for k in VARS:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    with h5py.File(path, "r") as f:
        u = f["u"]
        assert (u.compression, u.compression_opts, u.shuffle) == FILTERS[compression]
        config = json.loads(f.attrs["generator_config"])
    # the default stays out of generator_config (stores written before it compare equal)
    assert ("compression" in config) == (compression != "gzip")
    a, b = TaskReader(path, n_collocation=0), TaskReader(stores["gzip"], n_collocation=0)
    ba, bb = a.batch([0, 3]), b.batch([0, 3])
    for x, y in zip(ba, bb, strict=True):
        if x is not None:
            np.testing.assert_array_equal(x.numpy(), y.numpy())
    lazy = TaskReader(path, in_memory=False, n_collocation=0)
    np.testing.assert_array_equal(lazy.fields(1), b.fields(1))
    for x, y in zip(lazy.batch([3, 0, 3, 1]), b.batch([3, 0, 3, 1]), strict=True):
        if x is not None:  # lazy reads of repeated, unsorted tasks equal in-memory ones
            np.testing.assert_array_equal(x.numpy(), y.numpy())
    with open_xarray(path) as ds:
        np.testing.assert_array_equal(ds["u"].values, want["u"])
    assert validate(path) == []
    assert notes(path)[0].startswith(f"u: compression {compression}")
    s = summarize(path)
    assert s["storage"]["compression"] == compression
    assert compression in format_summary(s)


def test_default_bytes_unchanged(stores):
    assert CFG.compression == "gzip"
    assert "compression" not in json.loads(CFG.to_json())


def test_bad_compression_names_the_argument(tmp_path):
    bad = dataclasses.replace(CFG, compression="zstd")
    with pytest.raises(ConfigError, match=r"compression='zstd'.*gzip, lzf, none"):
        generate(bad, tmp_path / "x.h5")
    assert not list(tmp_path.iterdir())


def test_resume_with_another_compression_is_refused(stores, tmp_path):
    with pytest.raises(ConfigError, match=r"with compression='gzip', not compression='lzf'"):
        generate(dataclasses.replace(CFG, compression="lzf"), stores["gzip"], resume=True)
    out = tmp_path / "s.h5"
    lzf = dataclasses.replace(CFG, compression="lzf")
    generate(lzf, out, shard=(0, 2))
    with pytest.raises(ConfigError, match=r"with compression='lzf', not compression='none'"):
        generate(dataclasses.replace(CFG, compression="none"), out, shard=(0, 2), resume=True)


@pytest.mark.parametrize("compression", ["lzf", "none"])
def test_sharded_generation_and_merge_keep_the_filter(stores, tmp_path, compression):
    cfg = dataclasses.replace(CFG, compression=compression)
    out = tmp_path / "m.h5"
    for i in range(3):
        generate(cfg, out, shard=(i, 3), unit_size=1)
    merge([], out)
    want, got = _data(stores["gzip"]), _data(out)
    for k in VARS:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    with h5py.File(out, "r") as f:
        assert f["u"].compression == FILTERS[compression][0]
    assert validate(out) == []


def test_validate_flags_a_filter_other_than_the_config(stores, tmp_path):
    path = tmp_path / "mixed.h5"
    path.write_bytes(stores["none"].read_bytes())
    with h5py.File(path, "r+") as f:
        f.attrs["generator_config"] = CFG.to_json()  # says gzip; u is uncompressed
    assert any("generator_config asks compression='gzip'" in p for p in validate(path))


def test_cli_compression_flag(tmp_path, capsys):
    out = tmp_path / "c.h5"
    assert main(["generate", "oscillator", "--regime", "unforced-train", "--tasks", "2",
                 "--out", str(out), "--compression", "none"]) == 0
    with h5py.File(out, "r") as f:
        assert f["u"].compression is None
    assert main(["validate", str(out)]) == 0
    assert "compression none" in capsys.readouterr().out
