"""Sharded generation: the merged shards are the unsharded store, task by task."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from scimeta.cli import main
from scimeta.data import GenerationConfig, TaskReader, generate
from scimeta.data.shards import find_shards, merge, parse_shard, shard_path, shard_range
from scimeta.data.validate import validate
from scimeta.errors import ConfigError, StoreError

VARS = ("u", "y0", "params", "seed", "status", "support_idx", "query_idx")
CFG = GenerationConfig("oscillator", "unforced-train", tasks=11, seed=5, support=4, query=6)


def _data(path) -> dict:
    with h5py.File(path, "r") as f:
        return {k: f[k][:] for k in VARS if k in f} | {"complete": f.attrs["complete"]}


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    return generate(CFG, tmp_path_factory.mktemp("whole") / "train.h5", unit_size=2)


@pytest.mark.parametrize("count", [1, 3, 4])
def test_merged_shards_equal_the_unsharded_store(whole, tmp_path, count):
    out = tmp_path / "train.h5"
    paths = [generate(CFG, out, shard=(i, count), unit_size=3) for i in range(count)]
    assert paths == find_shards(out) == [shard_path(out, i, count) for i in range(count)]
    with pytest.raises(StoreError, match="incomplete"):
        TaskReader(paths[0])  # a shard is never read as a store
    merge([], out)
    want, got = _data(whole), _data(out)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    assert validate(out) == []
    assert len(TaskReader(out)) == len(TaskReader(whole))


def test_shard_resume_skips_done_and_redoes_unfinished(whole, tmp_path):
    out = tmp_path / "train.h5"
    done = generate(CFG, out, shard=(0, 2))
    stamp = done.stat().st_mtime_ns
    assert generate(CFG, out, shard=(0, 2), resume=True).stat().st_mtime_ns == stamp
    with pytest.raises(ConfigError, match="exists"):
        generate(CFG, out, shard=(0, 2))
    # shard 1 killed half-way: its .partial holds some tasks; resume finishes it
    second = generate(CFG, out, shard=(1, 2))
    with h5py.File(second, "r+") as f:
        lo, hi = shard_range(CFG.tasks, 1, 2)
        f["status"][lo + 2:hi] = -1  # pending again
        del f.attrs["shard_complete"]
    second.rename(second.with_name(second.name + ".partial"))
    generate(CFG, out, shard=(1, 2), resume=True)
    merge(find_shards(out), out)
    want, got = _data(whole), _data(out)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_merge_refuses_missing_mixed_or_unfinished_shards(tmp_path):
    out = tmp_path / "t.h5"
    a = generate(CFG, out, shard=(0, 3))
    with pytest.raises(ConfigError, match=r"missing \[1, 2\]"):
        merge([a], out)
    b = generate(CFG, out, shard=(0, 2))
    with pytest.raises(ConfigError, match="different runs"):
        merge([a, b], out)
    with pytest.raises(ConfigError, match="no shard files"):
        merge([], tmp_path / "other.h5")
    assert not (tmp_path / "t.h5").exists() and not (tmp_path / "t.h5.partial").exists()


def test_parse_shard():
    assert parse_shard("2/5") == (2, 5)
    assert parse_shard("auto", {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "4",
                                "SLURM_ARRAY_TASK_COUNT": "4"}) == (3, 4)
    for bad, match in (("5/5", "0 <= I < N"), ("x", "give I/N"), ("-1/3", "give I/N")):
        with pytest.raises(ConfigError, match=match):
            parse_shard(bad)
    with pytest.raises(ConfigError, match="SLURM_ARRAY_TASK_ID"):
        parse_shard("auto", {})
    assert [shard_range(10, i, 3) for i in range(3)] == [(0, 3), (3, 6), (6, 10)]
    with pytest.raises(ConfigError, match="for 2 tasks"):
        shard_range(2, 0, 3)


def test_cli_generate_shard_and_merge(whole, tmp_path, capsys):
    out = tmp_path / "c.h5"
    base = ["generate", "oscillator", "--regime", "unforced-train", "--tasks", "11",
            "--seed", "5", "--support", "4", "--query", "6", "--out", str(out)]
    for i in range(2):
        assert main([*base, "--shard", f"{i}/2"]) == 0
    assert "scimeta merge --out" in capsys.readouterr().out
    assert main(["merge", "--out", str(out)]) == 0
    assert "11 tasks" in capsys.readouterr().out
    np.testing.assert_array_equal(_data(out)["u"], _data(whole)["u"])
