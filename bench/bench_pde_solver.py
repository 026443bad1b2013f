"""Batched spectral ETDRK4 vs one-task-at-a-time method of lines with scipy BDF.

1D viscous Burgers u_t + u u_x = nu u_xx on [-1, 1) periodic, ``--points`` grid
points, ``--tasks`` tasks from the family's ``train`` regime (nu in [0.02, 0.2],
random sine initial conditions), output t in [0, 1] at 101 times. Compared:

* ``etdrk4 batched``: ``Burgers.solve_batch`` on all tasks in one call;
* ``BDF + FD2``: :func:`scimeta.solvers.mol.solve_mol` (``solve_ivp(method="BDF")``)
  per task on 2nd-order conservative central differences, Jacobian sparsity given
  by ``jac_sparsity`` (periodic tridiagonal), on the same grid and on
  ``--fd-refine`` times finer grids;
* ``BDF + Fourier`` (``--spectral-mol``): the same with Fourier differentiation
  (dense Jacobian), which matches the spectral accuracy.

Errors are relative L2 over all tasks and times against a reference: the
spectral solver on 4x the points with a quarter of the step, sampled at the
coarse points. Run: ``python bench/bench_pde_solver.py [--tasks 64 --points 256]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.integrate import solve_ivp

from scimeta.problems.burgers import Burgers
from scimeta.solvers.mol import MolGrid, Periodic, solve_mol


def fd2_solve(params, y0, t, rtol, atol) -> np.ndarray:
    """Per-task BDF on the library's periodic FD2 grid; flux form -(u^2/2)_x + nu u_xx."""
    n = y0.shape[1]
    grid = MolGrid(np.linspace(-1.0, 1.0, n, endpoint=False), Periodic(), Periodic())
    out = np.empty((len(params), len(t), n))
    for i, (nu,) in enumerate(params):
        out[i] = solve_mol(lambda _t, u, _ux, uxx, nu=nu: -0.5 * grid.ddx(u * u) + nu * uxx,
                           y0[i, :, 0], t, grid, rtol=rtol, atol=atol)
    return out


def fourier_rhs(nu: float, n: int, length: float):
    k = 2 * np.pi / length * np.fft.rfftfreq(n, 1.0 / n)
    k_odd = np.where(np.arange(len(k)) == n // 2, 0.0, k)

    def f(_t: float, u: np.ndarray) -> np.ndarray:
        uh = np.fft.rfft(u)
        flux_x = np.fft.irfft(1j * k_odd * np.fft.rfft(u**2), n)
        return -0.5 * flux_x + nu * np.fft.irfft(-(k**2) * uh, n)
    return f


def mol_solve(params, y0, t, rhs_factory, rtol, atol):
    """Per-task BDF on an arbitrary semi-discrete rhs (dense Jacobian)."""
    out = np.empty((len(params), len(t), y0.shape[1]))
    for i, (nu,) in enumerate(params):
        sol = solve_ivp(rhs_factory(nu), (t[0], t[-1]), y0[i, :, 0], method="BDF",
                        t_eval=t, rtol=rtol, atol=atol)
        if not sol.success:
            raise RuntimeError(sol.message)
        out[i] = sol.y.T
    return out


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=64)
    ap.add_argument("--points", type=int, default=256)
    ap.add_argument("--rtol", type=float, default=1e-6, help="BDF rtol (atol = rtol/100)")
    ap.add_argument("--fd-refine", type=int, nargs="+", default=[1, 4],
                    help="FD2 grids as multiples of --points")
    ap.add_argument("--spectral-mol", action="store_true", help="also run BDF + Fourier")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cfl", type=float, nargs="+", default=[0.5, 1.0],
                    help="ETDRK4 step as a multiple of dx / max|u0| (the family uses 0.5)")
    args = ap.parse_args()

    fam = Burgers(shape={"x": args.points})
    rng = np.random.default_rng(args.seed)
    regime = fam.regime("train")
    params = np.stack([regime.sample(fam.params, rng, i) for i in range(args.tasks)])
    y0 = np.stack([fam.sample_initial_state(rng, regime) for _ in range(args.tasks)])
    t = fam.time.values()

    fine = Burgers(shape={"x": 4 * args.points})
    # band-limited (exact) interpolation of the sine initial data onto the fine grid
    y0_fine = np.fft.irfft(np.fft.rfft(y0, axis=1), 4 * args.points, axis=1) * 4
    fine_step = fam.max_step(params, y0) / 4
    ref = np.empty((args.tasks, len(t), args.points, 1))
    for i in range(args.tasks):
        fine.max_step_override = float(fine_step[i])
        ref[i] = fine.solve_batch(params[i:i + 1], y0_fine[i:i + 1], t)[0][0, :, ::4]

    rows = []
    for cfl in args.cfl:
        run = Burgers(shape={"x": args.points})
        run.cfl = cfl
        walls = []
        for _ in range(3):  # median of 3: the batched solve takes well under a second
            t0 = time.perf_counter()
            spec, status = run.solve_batch(params, y0, t)
            walls.append(time.perf_counter() - t0)
        wall = float(np.median(walls))
        rows.append((f"etdrk4 batched, cfl {cfl:g}", wall, rel_l2(spec, ref),
                     int(np.sum(status != 0))))

    atol = args.rtol / 100
    for r in args.fd_refine:
        n = r * args.points
        y0_r = np.fft.irfft(np.fft.rfft(y0, axis=1), n, axis=1) * r
        t0 = time.perf_counter()
        fd = fd2_solve(params, y0_r, t, args.rtol, atol)[:, :, ::r]
        rows.append((f"BDF + FD2 {n} pts, sparse", time.perf_counter() - t0,
                     rel_l2(fd[..., None], ref), 0))
    if args.spectral_mol:
        t0 = time.perf_counter()
        four = mol_solve(params, y0, t, lambda nu: fourier_rhs(nu, args.points, 2.0),
                         args.rtol, atol)
        rows.append(("BDF + Fourier, dense jac", time.perf_counter() - t0,
                     rel_l2(four[..., None], ref), 0))

    print(f"1D Burgers, {args.points} points, {args.tasks} tasks, t in [0, 1] (101 outputs), "
          f"nu in [0.02, 0.2]; BDF rtol={args.rtol:g} atol={atol:g}")
    print(f"{'solver':28s} {'wall [s]':>9s} {'tasks/s':>9s} {'speed-up':>9s} "
          f"{'rel L2 err':>11s} {'not ok':>6s}")
    base = rows[0][1]
    for name, w, err, bad in rows:
        print(f"{name:28s} {w:9.3f} {args.tasks / w:9.2f} {w / base:8.1f}x {err:11.2e} {bad:6d}")
    print("speed-up = wall time of the row / wall time of the first row; ETDRK4 walls are the "
          "median of 3 runs, BDF walls one run")


if __name__ == "__main__":
    main()
