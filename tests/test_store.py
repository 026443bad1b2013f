"""HDF5 task store: round trips, provenance, determinism, validation, bad input."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
import xarray as xr

from scimeta import problems
from scimeta.data import (
    GenerationConfig,
    TaskReader,
    collate,
    generate,
    open_xarray,
    summarize,
    task_seeds,
    validate,
)
from scimeta.errors import ConfigError, StoreError, UnknownNameError


def test_xarray_round_trip_has_named_dims_and_param_coordinate(osc_store):
    ds = xr.open_dataset(osc_store, engine="h5netcdf")
    fam = problems.get("oscillator")
    assert ds["u"].dims == ("task", "time", "channel")
    assert ds["params"].dims == ("task", "param")
    assert list(ds["param"].values) == list(fam.param_names)
    assert list(ds["channel"].values) == ["x", "v"]
    assert ds.sizes["task"] == 40 and ds.sizes["time"] == fam.time.n
    np.testing.assert_allclose(ds["time"].values, fam.time.values(), rtol=0, atol=0)
    assert ds["time"].attrs["units"] == "s"
    assert ds["u"].dtype == np.float32 and ds["params"].dtype == np.float64
    ds.close()


def test_stored_tasks_are_reproducible_from_their_seed(osc_store):
    """params, initial state and field of a task follow from its stored seed alone."""
    fam = problems.get("oscillator")
    regime = fam.regime("train")
    with open_xarray(osc_store) as ds:
        seeds = ds["seed"].values
        np.testing.assert_array_equal(seeds, task_seeds(3, 40))
        for task in (0, 17, 39):
            rng = np.random.default_rng(int(seeds[task]))
            p = regime.sample(fam.params, rng, index=task)
            y0 = fam.sample_initial_state(rng, regime)
            np.testing.assert_array_equal(ds["params"].values[task], p)
            ref = fam.solve(p, y0, fam.time.values())
            # float32 storage: relative rounding 6e-8 of values of order 1
            np.testing.assert_allclose(ds["u"].values[task], ref, rtol=0, atol=1e-6)
            assert fam.regime("train").contains(fam.params, p)


def test_one_and_two_workers_write_identical_data(tmp_path):
    cfg = GenerationConfig("oscillator", "test-extrapolate", tasks=24, seed=5, support=4, query=8)
    a = generate(cfg, tmp_path / "a.h5", workers=1, unit_size=4)
    b = generate(cfg, tmp_path / "b.h5", workers=2, unit_size=5)
    with h5py.File(a) as fa, h5py.File(b) as fb:
        for name in ("u", "params", "seed", "status", "support_idx", "query_idx"):
            np.testing.assert_array_equal(fa[name][:], fb[name][:], err_msg=name)


def test_workers_share_a_small_store_by_default(tmp_path, caplog):
    """Without unit_size, units hold at most ceil(tasks / workers) tasks (the family's
    preferred batch, 8, would leave 6 tasks in one unit and one worker idle); the data
    equal a one-worker run's."""
    cfg = GenerationConfig("oscillator", "train", tasks=6, seed=2, support=4, query=8)
    with caplog.at_level("INFO", logger="scimeta.data.generate"):
        b = generate(cfg, tmp_path / "b.h5", workers=2)
    assert "6 of 6 tasks to solve with 2 worker(s) in 2 unit(s)" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO", logger="scimeta.data.generate"):
        a = generate(cfg, tmp_path / "a.h5", workers=1)
    assert "with 1 worker(s) in 1 unit(s)" in caplog.text
    with h5py.File(a) as fa, h5py.File(b) as fb:
        for name in ("u", "params", "seed", "status", "support_idx", "query_idx"):
            np.testing.assert_array_equal(fa[name][:], fb[name][:], err_msg=name)


def test_layout_chunks_one_task_compressed_and_dimension_scales(osc_store):
    with h5py.File(osc_store) as f:
        u = f["u"]
        assert u.chunks[0] == 1 and u.compression == "gzip" and u.shuffle
        assert [next(iter(d.keys())) for d in u.dims] == ["task", "time", "channel"]
        assert f.attrs["schema_version"] == 1
        assert json.loads(f.attrs["solver"])["rtol"] == 1e-10
    assert validate(osc_store) == []


def test_reader_batches_match_stored_fields(osc_store):
    reader = TaskReader(osc_store, n_collocation=7)
    batch = reader.batch([0, 5, 9])
    assert batch.support_x.shape == (3, 10, 1) and batch.support_y.shape == (3, 10, 2)
    assert batch.query_x.shape == (3, 50, 1) and batch.collocation_x.shape == (3, 7, 1)
    with h5py.File(osc_store) as f:
        u, t = f["u"][5], f["time"][:]
        s, q = f["support_idx"][5], f["query_idx"][5]
        np.testing.assert_array_equal(batch.support_y[1].numpy(), u[s])
        np.testing.assert_array_equal(batch.query_y[1].numpy(), u[q])
        np.testing.assert_allclose(batch.support_x[1, :, 0].numpy(), t[s].astype(np.float32))
        np.testing.assert_array_equal(batch.params[1].numpy(), f["params"][5].astype(np.float32))
    assert not set(s.tolist()) & set(q.tolist())
    c = batch.collocation_x.numpy()
    assert c.min() >= 0.0 and c.max() <= 10.0


def test_in_memory_equals_lazy_and_dataloader_workers_are_fork_safe(osc_store):
    lazy = TaskReader(osc_store)
    mem = TaskReader(osc_store, in_memory=True)
    ids = [3, 1, 4, 1, 5]
    for x, y in zip(lazy.batch(ids), mem.batch(ids), strict=True):
        if x is not None:
            torch.testing.assert_close(x, y, rtol=0, atol=0)
    loader = torch.utils.data.DataLoader(lazy, batch_size=8, num_workers=2, collate_fn=collate)
    first = next(iter(loader))
    torch.testing.assert_close(first.query_y, lazy.batch(range(8)).query_y, rtol=0, atol=0)


def test_resampling_is_seeded_and_respects_sizes(osc_store):
    a = TaskReader(osc_store, resample_seed=11, support=5, query=20)
    b = TaskReader(osc_store, resample_seed=11, support=5, query=20)
    c = TaskReader(osc_store, resample_seed=12, support=5, query=20)
    assert a[0][0].shape == (5, 1) and a[0][2].shape == (20, 1)
    torch.testing.assert_close(a[2][0], b[2][0])
    assert not torch.equal(a[2][0], c[2][0])


def test_solver_failures_are_stored_counted_and_skipped(blowup_store):
    s = summarize(blowup_store)
    assert s["status_counts"]["ok"] == 2 and s["status_counts"]["solver-failed"] == 2
    reader = TaskReader(blowup_store)
    assert len(reader) == 2
    # y' = a y^2, y(0)=1 has y = 1/(1 - a t): the ok tasks hold it
    for i in range(2):
        a = reader[i][5].item()
        t = reader.meta.time
        np.testing.assert_allclose(reader.fields(i)[:, 0], 1 / (1 - a * t), rtol=1e-6)
    assert validate(blowup_store) == []


def test_values_beyond_float32_are_stored_as_non_finite(tmp_path):
    out = generate(GenerationConfig("test_growth", "mixed", tasks=4, support=2, query=2),
                   tmp_path / "g.h5")
    assert summarize(out)["status_counts"] == {
        "pending": 0, "ok": 2, "solver-failed": 0, "non-finite": 2, "under-resolved": 0}
    reader = TaskReader(out)
    assert len(reader) == 2
    np.testing.assert_allclose(reader.fields(0)[-1, 0], np.e, rtol=1e-6)
    assert validate(out) == []


def test_entry_point_families_are_discovered(monkeypatch):
    from importlib.metadata import EntryPoint

    from scimeta import registry

    ep = EntryPoint("lab_decay", "conftest:Blowup", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [ep] if
                        group == registry.ENTRY_POINT_GROUP else [])
    assert "lab_decay" in registry.names()
    fam = registry.get("lab_decay")
    assert fam.equation == "y' = a*y**2"
    registry._loaded.pop("lab_decay")


# ---- bad input ----------------------------------------------------------------

def test_unknown_family_and_regime_list_the_known_ones(tmp_path):
    with pytest.raises(UnknownNameError, match="oscillator") as e:
        generate(GenerationConfig("oscilator", "train", tasks=2), tmp_path / "x.h5")
    assert "did you mean 'oscillator'" in str(e.value)
    with pytest.raises(UnknownNameError, match="test-extrapolate"):
        generate(GenerationConfig("oscillator", "trian", tasks=2), tmp_path / "x.h5")


@pytest.mark.parametrize(
    ("bounds", "match"),
    [((("omega0", 3.0, 1.0),), "inverted"), ((("omega0", -1.0, 1.0),), "physical domain"),
     ((("nope", 0.0, 1.0),), "unknown parameter 'nope'")],
)
def test_bad_parameter_bounds_are_refused_before_work(tmp_path, bounds, match):
    with pytest.raises(ConfigError, match=match):
        generate(GenerationConfig("oscillator", "train", tasks=2, bounds=bounds),
                 tmp_path / "x.h5")
    assert not list(tmp_path.iterdir())


def test_bound_override_is_applied(tmp_path):
    cfg = GenerationConfig("oscillator", "train", tasks=6, bounds=(("omega0", 2.0, 2.2),))
    with open_xarray(generate(cfg, tmp_path / "x.h5")) as ds:
        w = ds["params"].sel(param="omega0").values
    assert w.min() >= 2.0 and w.max() <= 2.2


def test_existing_output_is_refused_unless_resume_or_overwrite(osc_store, tmp_path):
    out = tmp_path / "x.h5"
    cfg = GenerationConfig("oscillator", "train", tasks=3)
    generate(cfg, out)
    before = out.read_bytes()
    with pytest.raises(ConfigError, match="exists; pass resume=True"):
        generate(cfg, out)
    generate(cfg, out, resume=True)  # complete already: nothing to do
    assert out.read_bytes() == before
    with pytest.raises(ConfigError, match="generated with"):
        generate(GenerationConfig("oscillator", "train", tasks=4), out, resume=True)
    generate(GenerationConfig("oscillator", "train", tasks=4), out, overwrite=True)
    assert summarize(out)["tasks"] == 4


@pytest.mark.parametrize(
    ("sizes", "match"), [((0, 5), "must be >= 1"), ((150, 100), "cannot draw")]
)
def test_impossible_support_query_sizes(tmp_path, sizes, match):
    with pytest.raises(ConfigError, match=match):
        generate(GenerationConfig("oscillator", "train", tasks=2, support=sizes[0],
                                  query=sizes[1]), tmp_path / "x.h5")


def test_unreadable_files_give_one_line_errors(tmp_path, osc_store):
    junk = tmp_path / "junk.h5"
    junk.write_text("not hdf5")
    data = open(osc_store, "rb").read()
    trunc = tmp_path / "trunc.h5"
    trunc.write_bytes(data[: len(data) // 3])
    for path in (junk, trunc, tmp_path / "missing.h5"):
        with pytest.raises(StoreError) as e:
            TaskReader(path)
        assert "\n" not in str(e.value)
        assert validate(path) and "\n" not in validate(path)[0]


def _copy(src, dst):
    dst.write_bytes(open(src, "rb").read())
    return dst


def test_unknown_schema_version_and_missing_dataset(tmp_path, osc_store):
    v2 = _copy(osc_store, tmp_path / "v2.h5")
    with h5py.File(v2, "a") as f:
        f.attrs["schema_version"] = 99
    with pytest.raises(StoreError, match="schema_version 99"):
        TaskReader(v2)
    missing = _copy(osc_store, tmp_path / "missing.h5")
    with h5py.File(missing, "a") as f:
        del f["query_idx"]
    with pytest.raises(StoreError, match=r"missing dataset.*query_idx"):
        TaskReader(missing)
    assert any("query_idx" in p for p in validate(missing))


def test_validator_names_every_violation(tmp_path, osc_store):
    bad = _copy(osc_store, tmp_path / "bad.h5")
    with h5py.File(bad, "a") as f:
        del f.attrs["created"]
        f["status"][0] = 9
        q = f["query_idx"][1]
        q[0] = f["support_idx"][1][0]
        f["query_idx"][1] = q
        u = f["u"][2]
        u[3, 0] = np.nan
        f["u"][2] = u
        f["params"][4, 0] = 100.0
    found = "\n".join(validate(bad))
    for fragment in ("'created'", "unknown codes [9]", "task(s) [1]", "ok task(s) [2]",
                     "task(s) [4] outside the regime"):
        assert fragment in found, fragment


# ---- precision: float64 initial states, float64 stores, older stores ---------------

def test_initial_states_are_stored_in_float64_and_resolve_exactly(osc_store):
    fam = problems.get("oscillator")
    with h5py.File(osc_store) as f:
        assert f["y0"].dtype == np.float64 and f["y0"].shape == (40, 2)
        seeds, params, y0, u = f["seed"][:], f["params"][:], f["y0"][:], f["u"][:]
    for task in (0, 21):
        rng = np.random.default_rng(int(seeds[task]))
        fam.regime("train").sample(fam.params, rng, index=task)
        np.testing.assert_array_equal(y0[task], fam.sample_initial_state(rng))
        ref = fam.solve(params[task], y0[task], fam.time.values())
        np.testing.assert_allclose(u[task], ref, rtol=0, atol=1e-6)  # float32 rounding


def test_float64_store_keeps_the_solver_values(tmp_path):
    cfg = GenerationConfig("oscillator", "train", tasks=3, seed=2, support=4, query=5,
                           dtype="float64")
    out = generate(cfg, tmp_path / "f64.h5")
    assert validate(out) == []
    fam = problems.get("oscillator")
    with h5py.File(out) as f:
        assert f["u"].dtype == np.float64
        assert json.loads(f.attrs["generator_config"])["dtype"] == "float64"
        ref = fam.solve(f["params"][1], f["y0"][1], fam.time.values())
        np.testing.assert_array_equal(f["u"][1], ref)
    reader = TaskReader(out, dtype=torch.float64)
    assert reader.batch([0]).support_y.dtype == torch.float64
    f32 = generate(GenerationConfig("oscillator", "train", tasks=3, seed=2, support=4,
                                    query=5), tmp_path / "f32.h5")
    with h5py.File(f32) as f:
        assert "dtype" not in json.loads(f.attrs["generator_config"])  # as before
    with pytest.raises(ConfigError, match="dtype='float16' is not allowed"):
        generate(GenerationConfig("oscillator", "train", tasks=3, dtype="float16"),
                 tmp_path / "x.h5")


def test_stores_written_before_y0_still_read_validate_and_hash(tmp_path, osc_store):
    from scimeta.data.manifest import content_hashes

    old = _copy(osc_store, tmp_path / "old.h5")
    with h5py.File(old, "a") as f:
        del f["y0"]
    assert validate(old) == []
    assert len(TaskReader(old)) == 40
    assert "y0" not in content_hashes(old) and "y0" in content_hashes(osc_store)


def test_validate_rejects_unsafe_names_and_unknown_families(tmp_path, osc_store):
    bad = _copy(osc_store, tmp_path / "names.h5")
    with h5py.File(bad, "a") as f:
        f.attrs["regime"] = "../../etc/x"
        f.attrs["family"] = "nosuch"
    found = "\n".join(validate(bad))
    assert "regime attribute '../../etc/x' is not a safe name" in found
    assert "family 'nosuch' is not a known task family" in found


def test_a_huge_store_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(StoreError, match=r"tasks=1000000000 makes a store of up to .* TB"):
        generate(GenerationConfig("oscillator", "train", tasks=10**9), tmp_path / "x.h5")
    assert not list(tmp_path.iterdir())
