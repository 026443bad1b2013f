"""Navier-Stokes pieces of ``bench/leads_protocol.py``: the resolution check.

LEADS's generator (``datasets/ns.py``, after the FNO code) solves the vorticity
equation with Crank-Nicolson, dt = 1e-3, directly on the 32 x 32 grid it stores; the
family ``navier_stokes_forced`` solves on 64 x 64 (ETDRK4, dt = 0.01) and stores the
32 x 32 points. :func:`coarse_solver_error` measures how far a solve at LEADS's
resolution (the same family with ``refine = 1``) lies from the stored test data, from
each stored initial state. There is no exact-field floor: the learned field is
stepped once per output interval (dt = 1), where the PDE's own field is unstable
under any explicit step (nu |k|^2 dt ~ 10 at the grid's highest modes, velocity x
dt / dx ~ 30). Nothing here prints.
"""

from __future__ import annotations

import logging

import numpy as np

from scimeta.data import EnvironmentReader
from scimeta.problems.navier_stokes import NavierStokesForced

FAMILY = "navier_stokes_forced"


def coarse_solver_error(reader: EnvironmentReader) -> float:
    """MSE (omega, every time and point) between a solve on the stored 32 x 32 grid
    and the stored test trajectories of ``reader`` (which serves omega alone)."""
    fam = NavierStokesForced(refine=1)
    t = reader.time.double().numpy()
    shape = (fam.shape["x"], fam.shape["y"])
    # the coarse solve is flagged under-resolved by the family's own test (top-third
    # energy share ~2e-5 > 1e-6): by design here, said in docs/protocols.md
    quiet = logging.getLogger("scimeta.pde")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        errs = _per_trajectory(fam, reader, t, shape)
    finally:
        quiet.setLevel(level)
    return float(np.mean(np.concatenate(errs)))


def _per_trajectory(fam: NavierStokesForced, reader: EnvironmentReader, t: np.ndarray,
                    shape: tuple[int, int]) -> list[np.ndarray]:
    errs = []
    for e in range(len(reader)):
        omega = reader.trajectories(e, query_store=True).double().numpy()  # [N, T, H*W]
        y0 = np.zeros((len(omega), *shape, 2))
        y0[..., 0] = omega[:, 0].reshape(-1, *shape)   # psi is recomputed from omega
        sol, _ = fam.solve_batch(np.repeat(reader.params[e][None], len(omega), 0), y0, t)
        errs.append(np.mean((sol[..., 0].reshape(omega.shape) - omega) ** 2, axis=(1, 2)))
    return errs
