"""bench/leads_protocol.py --smoke runs the LEADS/CoDA protocol end to end (a pipeline
check at tiny sizes, not the numbers): Lotka-Volterra on accurate data (~10 s on one
core), the glycolytic CoDA grid on published-solver data (~10 s) and Gray-Scott on
LEADS's grid model with the convolutional field, on accurate and on published-solver
data (~12 s each)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import h5py

ROOT = Path(__file__).resolve().parents[1]


def _run(tmp_path: Path, *extra: str) -> tuple[str, dict]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "leads_protocol.py"),
                          "--out", str(tmp_path), "--smoke", *extra], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout, json.loads((tmp_path / "results.json").read_text())


def _check_rows(res: dict, grids: tuple[tuple[str, tuple[str, ...]], ...]) -> None:
    cells = {(r["grid"], r["set"], r["init"], r["adapted"]) for r in res["rows"]}
    for grid, sets in grids:
        for s in sets:
            for init in ("random", "joint", "maml"):
                assert (grid, s, init, "all") in cells
            assert (grid, s, "context", "context") in cells
    for r in res["rows"]:
        assert r["tuned"]["n"] == 2 * r["tuned"]["n_env"]        # 2 test trajectories/env
        if r["adapted"] in ("all", "context"):  # Adam fine-tuning; MAML's own SGD step
            assert math.isfinite(r["tuned"]["mean"])              # may diverge at this size


def test_smoke_runs_end_to_end(tmp_path):
    stdout, res = _run(tmp_path)
    assert "| leads | in-domain | context |" in stdout
    _check_rows(res, (("leads", ("in-domain",)), ("coda", ("in-domain", "new env"))))
    leads_rows = {(r["grid"], r["set"]) for r in res["rows"] if r["init"] == "leads"}
    assert leads_rows == {("leads", "in-domain"), ("coda", "in-domain"), ("coda", "new env")}
    assert all(r["adapted"] == "g_e (f fixed)" for r in res["rows"] if r["init"] == "leads")
    floor = res["log"]["published_solver_mse"]
    assert set(floor) == {"leads/test", "coda/in-domain", "coda/new env"}
    assert all(0 < v < 1e-3 for v in floor.values())
    assert res["log"]["solver_preset"] == "accurate"
    assert set(res["log"]["store_presets"].values()) == {"accurate"}
    assert (tmp_path / "table.md").read_text().startswith("Lotka-Volterra forecasting")
    assert res["log"]["argv"] == ["--out", str(tmp_path), "--smoke"]
    _check_error_files(tmp_path, res)


def _check_error_files(out: Path, res: dict) -> None:
    """One forecast-<grid>-<set>.nc per test set, its rows those of results.json, each
    trajectory's mean over time its MSE there (the same rollouts)."""
    import numpy as np
    import xarray as xr

    sets = sorted({(r["grid"], r["set"]) for r in res["rows"]})
    files = sorted(p.name for p in out.glob("forecast-*.nc"))
    assert files == sorted(f"forecast-{g}-{s.replace(' ', '-')}.nc" for g, s in sets)
    for grid, test_set in sets:
        rows = [r for r in res["rows"] if (r["grid"], r["set"]) == (grid, test_set)]
        with xr.open_dataset(out / f"forecast-{grid}-{test_set.replace(' ', '-')}.nc",
                             engine="h5netcdf") as ds:
            assert ds.attrs["grid"] == grid and ds.attrs["set"] == test_set
            assert list(ds["init"].values) == [r["init"] for r in rows]
            assert (ds["sq_error_tuned"].isel(time=0) == 0).all()  # rollouts start at y0
            for i, r in enumerate(rows):
                for stage in ("none", "tuned"):
                    mse = ds[f"sq_error_{stage}"].isel(row=i).mean("time").values
                    ok = np.isfinite(mse)
                    assert int((~ok).sum()) == r[stage]["diverged"]
                    if ok.any():
                        assert math.isclose(float(mse[ok].mean()), r[stage]["mean"],
                                            rel_tol=1e-5)


def test_glycolytic_smoke_on_published_data(tmp_path):
    stdout, res = _run(tmp_path, "--system", "glycolytic", "--solver-preset", "published",
                       "--schedule", "cosine", "--teacher-forcing", "0.99,10")
    assert "| coda | new env | context |" in stdout and "| leads |" not in stdout
    _check_rows(res, (("coda", ("in-domain", "new env")),))
    log = res["log"]
    # LEADS's training rollouts and the cosine rate, as asked, recorded with the sizes
    assert log["size"]["teacher_forcing"] == [0.99, 10] and log["size"]["schedule"] == "cosine"
    assert log["system"] == "glycolytic" and log["solver_preset"] == "published"
    assert set(log["published_solver_mse"]) == {"coda/in-domain", "coda/new env"}
    assert all(0 < v < 1e-3 for v in log["published_solver_mse"].values())
    stores = sorted((tmp_path / "data" / "glycolytic_coda-published").glob("*.h5"))
    assert [p.name for p in stores] == ["adapt-test.h5", "adapt.h5", "test.h5", "train.h5"]
    for path in stores:  # the provenance the script reads back, checked independently
        with h5py.File(path, "r") as f:
            raw = f.attrs["solver_preset"]
        assert (raw.decode() if isinstance(raw, bytes) else raw) == "published"
        assert log["store_presets"][str(path)] == "published"
    table = (tmp_path / "table.md").read_text()
    assert table.startswith("Glycolytic oscillator forecasting")
    assert "data: published" in table


def test_gray_scott_smoke_with_the_conv_field(tmp_path):
    """Both grids: LEADS's 3 environments (1 training trajectory each, in-domain only)
    and CoDA's 4 training + 4 adaptation environments (1 trajectory each: MAML's
    support and query are that trajectory, as on the LEADS grid)."""
    stdout, res = _run(tmp_path, "--system", "gray-scott")
    assert "| leads | in-domain | context |" in stdout and "| coda | new env |" in stdout
    assert "| coda | new env | leads | g_e (f fixed) |" in stdout  # LEADS on the grid
    _check_rows(res, (("leads", ("in-domain",)), ("coda", ("in-domain", "new env"))))
    log = res["log"]
    assert log["system"] == "gray-scott" and log["family"] == "gray_scott_leads"
    assert log["size"]["field"] == "conv" and log["size"]["grid"] == [32, 32]
    n_env = {(r["grid"], r["set"]): r["tuned"]["n_env"] for r in res["rows"]}
    assert n_env == {("leads", "in-domain"): 3, ("coda", "in-domain"): 4,
                     ("coda", "new env"): 4}
    # RK45 at scipy's defaults on LEADS's grid model lies far below the published MSE
    floor = log["published_solver_mse"]
    assert all(0 < floor[k] < 1e-6 for k in ("leads/test", "coda/in-domain", "coda/new env"))
    stores = sorted((tmp_path / "data" / "gray_scott_leads").glob("*.h5"))
    assert [p.name for p in stores] == ["test.h5", "train.h5"]
    stores = sorted((tmp_path / "data" / "gray_scott_coda").glob("*.h5"))
    assert [p.name for p in stores] == ["adapt-test.h5", "adapt.h5", "test.h5", "train.h5"]
    table = (tmp_path / "table.md").read_text()
    assert table.startswith("Gray-Scott (LEADS grid model) forecasting")
    assert "2.08 ± 2.88 e-3" in table


def test_gray_scott_smoke_on_published_data(tmp_path):
    """LEADS's own generator: RK45 at scipy's defaults on the 9-point grid model; the
    joint and context inits trained on the grid's rotations/reflections (--augment d4)."""
    _, res = _run(tmp_path, "--system", "gray-scott", "--grids", "leads",
                  "--solver-preset", "published", "--augment", "d4")
    log = res["log"]
    assert log["solver_preset"] == "published"
    assert log["size"]["augment"] == "d4"  # the images' path through run_grid ran
    stores = sorted((tmp_path / "data" / "gray_scott_leads-published").glob("*.h5"))
    assert [p.name for p in stores] == ["test.h5", "train.h5"]
    for path in stores:
        with h5py.File(path, "r") as f:
            raw = f.attrs["solver_preset"]
        assert (raw.decode() if isinstance(raw, bytes) else raw) == "published"
    # the accurate ETDRK4 solve from the same starts lies far below the published MSE
    assert 0 < log["published_solver_mse"]["leads/test"] < 1e-6


def test_navier_stokes_smoke_with_the_fourier_field(tmp_path):
    """LEADS's Navier-Stokes grid (4 forcings; here 2 training and 2 test trajectories
    per environment): the FNO field on omega alone, Euler steps, mini-batches of 1,
    joint and context trained on the forcing-symmetry images of one trajectory
    (--augment forcing) and kept by validation on the other;
    adapts on every training trajectory of an environment, MAML on one and forecasts
    the other. ~40 s on 2 cores: 16 tasks, each warmed up for 28.5 time units on 64^2
    points, solved by 2 worker processes (~60 s with one)."""
    stdout, res = _run(tmp_path, "--system", "navier-stokes", "--grids", "leads",
                       "--workers", "2", "--augment", "forcing")
    assert "| leads | in-domain | context |" in stdout and "| coda |" not in stdout
    _check_rows(res, (("leads", ("in-domain",)),))
    log = res["log"]
    assert log["family"] == "navier_stokes_forced" and log["size"]["field"] == "fno"
    assert log["size"]["method"] == "euler" and log["size"]["batch"] == 1
    assert log["size"]["val"] == 1 and log["leads/context_kept_step"] in (0, 1, 2)
    assert log["args"]["workers"] == 2
    assert log["size"]["augment"] == "forcing" and log["size"]["images"] == 16
    _check_error_files(tmp_path, res)
    assert "| leads | in-domain | leads | g_e (f fixed) |" in stdout  # LEADS on the FNO
    assert {r["tuned"]["n_env"] for r in res["rows"]} == {4}
    # a solve on LEADS's 32 x 32 grid lies far below the published MSE of the data
    assert 0 < log["published_solver_mse"]["leads/test"] < 1e-5
    table = (tmp_path / "table.md").read_text()
    assert "5.95 ± 3.65 e-3" in table and "none for this system" in table
    refused = subprocess.run([sys.executable, str(ROOT / "bench" / "leads_protocol.py"),
                              "--out", str(tmp_path / "p"), "--smoke", "--system",
                              "navier-stokes", "--solver-preset", "published"],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "not available for navier-stokes" in refused.stderr


def test_every_system_with_a_leads_figure_names_the_family_the_report_matches():
    """The report puts LEADS's figure beside a results.json by its family: the
    protocol's family of each system must be the registry row's."""
    import importlib.util

    from scimeta.report.published import PUBLISHED

    sys.path.insert(0, str(ROOT / "bench"))
    try:
        spec = importlib.util.spec_from_file_location("leads_protocol",
                                                      ROOT / "bench" / "leads_protocol.py")
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(ROOT / "bench"))
    for system, cfg in mod.SYSTEMS.items():
        row = PUBLISHED.get(f"leads2021-{system}")
        if row is not None:
            assert row.match["family"] == cfg["family"], system
    assert "leads2021-gray-scott" in PUBLISHED and "gray-scott" in mod.SYSTEMS


def test_d4_images_of_a_gray_scott_trajectory_are_trajectories():
    """--augment d4: each rotation/reflection of a solved trajectory of LEADS's grid
    model equals the solve from the rotated/reflected initial state (the 9-point
    Laplacian on the periodic square grid is isotropic), to the solver's round-off;
    the 8 images are distinct and image 0 is the trajectory itself."""
    import numpy as np
    import torch

    from scimeta import registry

    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from _leads_gray_scott import augment_d4
    finally:
        sys.path.remove(str(ROOT / "bench"))
    fam = registry.get("gray_scott_leads")
    rng = np.random.default_rng(0)
    y0 = np.stack([np.ones((32, 32)), np.zeros((32, 32))], -1)
    y0[3:9, 5:8] = (0.5, 0.25)                       # an asymmetric seed patch
    y0 += 0.01 * rng.random(y0.shape)
    t = np.array([0.0, 40.0, 80.0])
    p = np.array([[0.037, 0.060]])
    sol, _ = fam.solve_batch(p, y0[None], t)                         # [1, T, 32, 32, 2]
    traj = torch.as_tensor(sol.reshape(1, 1, 3, -1))                   # [E, K, T, S]
    a0, a = augment_d4(traj[:, :, 0], traj, (32, 32), 2)
    assert a.shape == (1, 8, 3, 2048) and torch.equal(a[:, :, 0], a0)
    assert torch.equal(a[0, 0], traj[0, 0])
    for i in range(8):
        img0 = a[0, i, 0].reshape(1, 32, 32, 2).numpy()
        again, _ = fam.solve_batch(p, img0, t)
        np.testing.assert_allclose(again.reshape(3, -1), a[0, i].numpy(), rtol=0,
                                   atol=1e-12)
    flat = a[0, :, 1].reshape(8, -1)
    assert (torch.cdist(flat, flat) + torch.eye(8)).min() > 1e-3   # 8 distinct images


def _bench_module(name: str):
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(ROOT / "bench"))


#: LEADS's Navier-Stokes environments (nu, a_x, a_y, b_x, b_y)
NS_ENVS = [[1e-3, 1, 1, 1, 1], [1e-3, 1, 1, 1, 2], [1e-3, 1, 1, 2, 1], [1e-3, 1, 2, 2, 1]]


def test_forcing_symmetries_of_the_leads_navier_stokes_environments():
    """The isometries of the 32 x 32 torus grid that keep f = sin 2pi(a.x) + cos 2pi(b.x),
    derived by hand: a = b = (1, 1) depends on x + y alone, so the 32 shifts (s, -s)
    keep it, and so do the quarter turn / reflection families found below — 128 in
    all; a = (1, 1), b = (1, 2): the half turn with a shift s, a.s = 1/2, b.s = 0 ->
    s = (0, 1/2) (grid (1, 17) with torch.rot90's index offset), 2 in all; (1, 1),
    (2, 1): the mirror case, 2; (1, 2), (2, 1): the half turn with s = (1/2, 0) and
    the anti-diagonal reflections with a.s = -1/4, b.s = 1/4, 4 in all."""
    import numpy as np

    from scimeta import registry

    mod = _bench_module("_leads_navier_stokes")
    fam = registry.get("navier_stokes_forced")
    groups = [mod.forcing_symmetries(fam, np.array(p)) for p in NS_ENVS]
    assert [len(g) for g in groups] == [128, 2, 2, 4]
    assert all(g[0] == (False, 0, 0, 0) for g in groups)
    # (1, 1), (1, 1): every shift along (1, -1) keeps x + y mod 1
    assert all((False, 0, k, (32 - k) % 32) in groups[0] for k in range(32))
    assert groups[1][1][:2] == (False, 2) and groups[2][1][:2] == (False, 2)
    assert sum(flip for flip, *_ in groups[3]) == 2


def test_forcing_images_of_a_navier_stokes_trajectory_are_trajectories():
    """--augment forcing: the image of a solved trajectory under each isometry that
    keeps its environment's forcing equals the solve from the image of its initial
    state (the pseudo-spectral solver is exactly equivariant), to round-off; an
    isometry that does not keep the forcing does not give a trajectory."""
    import numpy as np
    import torch

    from scimeta import registry

    mod = _bench_module("_leads_navier_stokes")
    fam = registry.get("navier_stokes_forced")
    rng = np.random.default_rng(0)
    k = np.fft.fftfreq(32, 1 / 32)
    low = (np.abs(k)[:, None] <= 4) & (np.abs(k)[None] <= 4)
    w0 = np.fft.ifft2(low * (rng.standard_normal((32, 32)) + 1j * rng.standard_normal(
        (32, 32)))).real * 200                                  # an asymmetric field
    t = np.array([0.0, 0.5, 1.0])
    p = np.array([NS_ENVS[3]])
    y0 = np.zeros((1, 32, 32, 2))
    y0[..., 0] = w0
    sol, _ = fam.solve_batch(p, y0, t)                                # [1, T, 32, 32, 2]
    omega = torch.as_tensor(sol[..., 0].reshape(1, 1, 3, -1))         # [E, K, T, S]
    a0, a = mod.augment_forcing_symmetric(omega[:, :, 0], omega, p, images=4)
    assert a.shape == (1, 4, 3, 1024) and torch.equal(a[:, :, 0], a0)
    assert torch.equal(a[0, 0], omega[0, 0])
    scale = float(omega.abs().max())
    for i in range(4):
        img0 = np.zeros((1, 32, 32, 2))
        img0[..., 0] = a[0, i, 0].reshape(32, 32).numpy()
        again, _ = fam.solve_batch(p, img0, t)
        np.testing.assert_allclose(again[0, ..., 0].reshape(3, -1), a[0, i].numpy(),
                                   rtol=0, atol=1e-10 * scale)
    flat = a[0, :, 2]
    assert (torch.cdist(flat, flat) + torch.eye(4) * scale).min() > 1e-3 * scale
    wrong = mod.grid_image(omega[0, 0].reshape(3, 32, 32), (False, 1, 0, 0))  # a 1/4 turn
    img0[..., 0] = wrong[0].numpy()
    again, _ = fam.solve_batch(p, img0, t)
    assert np.abs(again[0, -1, ..., 0] - wrong[-1].numpy()).max() > 1e-3 * scale


def test_augmented_training_never_sees_a_validation_trajectory():
    """The trainer splits the validation trajectories off before making images: the
    trained set is the images of the first K - v trajectories only."""
    import torch

    mod = _bench_module("_leads_common")
    seen = {}

    def augment(y0, traj):
        seen["traj"] = traj
        return y0.repeat(1, 3, 1), traj.repeat(1, 3, 1, 1)

    traj = torch.arange(2 * 5 * 4 * 3, dtype=torch.float64).reshape(2, 5, 4, 3)
    mod._trainer(dict(val=2), traj[:, :, 0], traj, {}, "g", augment)
    assert torch.equal(seen["traj"], traj[:, :3])


def test_bad_training_options_are_refused_before_any_store_is_built(tmp_path):
    for extra, needle in ((["--teacher-forcing", "1.5,10"], "0 <= K <= 1"),
                          (["--teacher-forcing", "0.99"], "give K,EVERY"),
                          (["--system", "navier-stokes", "--augment", "d4"],
                           "gray-scott only"),
                          (["--system", "gray-scott", "--augment", "forcing"],
                           "navier-stokes only"),
                          (["--system", "glycolytic", "--steps", "leads=2"],
                           "no penalty constants for glycolytic"),
                          (["--workers", "0"], "--workers 0: give an int >= 1"),
                          (["--steps", "epochs=3"], "unknown size 'epochs'; use joint, "
                                                    "context, maml, tune, substeps")):
        out = subprocess.run([sys.executable, str(ROOT / "bench" / "leads_protocol.py"),
                              "--out", str(tmp_path / "o"), "--smoke", *extra],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode != 0 and needle in out.stderr, (extra, out.stderr)
        assert not (tmp_path / "o").exists()
