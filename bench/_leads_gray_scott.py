"""Gray-Scott pieces of ``bench/leads_protocol.py``: LEADS's grid model, its RK45 check.

The family ``gray_scott_leads`` is LEADS's semi-discrete model (9-point Laplacian at
dx = 1 on a periodic 32 x 32 grid); its stores are solved with ETDRK4, not with
``solve_ivp``, so the generic ODE functions of ``_leads_common`` do not apply. Here:
the exact field in torch (for the discretisation floor under the model's RK4 steps)
and the distance between the two solver presets on the test data (``published``: RK45
at scipy's defaults on the same grid model, what LEADS's generator, ``datasets/gs.py``,
ran; the library's ``published_rhs`` of the family). States are flat
``[..., H * W * 2]`` (``[..., H, W, (u, v)]`` reshaped), the layout of
:class:`~scimeta.data.EnvironmentReader`. Nothing here prints.
"""

from __future__ import annotations

import numpy as np
import torch

from scimeta import registry
from scimeta.data import EnvironmentReader
from scimeta.data.solver_preset import solve_batch
from scimeta.problems.gray_scott import grid_field

FAMILY = "gray_scott_leads"
SHAPE = (32, 32)


class GrayScottGridField(torch.nn.Module):
    """The exact field of ``gray_scott_leads`` in torch, on flat states; ``p`` = (F, k)
    (a parameter, so that it can be set per environment through ``torch.func``)."""

    def __init__(self) -> None:
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(2))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        grid = y.reshape(*y.shape[:-1], *SHAPE, 2)
        out = grid_field(grid, self.p[0], self.p[1], torch.roll,
                         lambda xs: torch.cat(xs, dim=-1))
        return out.reshape(y.shape)


def published_solver_error(reader: EnvironmentReader, preset: str) -> float:
    """MSE between the other solver preset and the stored test trajectories, over every
    time and point: RK45 at scipy's defaults (the library's ``published`` preset, LEADS's
    generator) against accurate stores, the accurate ETDRK4 solve against published ones,
    each from the stored trajectory's y0."""
    fam = registry.get(FAMILY)
    other = "published" if preset == "accurate" else "accurate"
    t = reader.time.double().numpy()
    errs = []
    for e in range(len(reader)):
        for y in reader.trajectories(e, query_store=True).double().numpy():
            sol, status = solve_batch(fam, other, reader.params[e][None],
                                      y[0].reshape(1, *SHAPE, 2), t)
            if status[0] != 0:
                raise RuntimeError(f"the {other} solver failed for {reader.params[e]}")
            errs.append(np.mean((sol[0].reshape(len(t), -1) - y) ** 2))
    return float(np.mean(errs))


def d4_images(x: torch.Tensor, shape: tuple[int, int], channels: int) -> torch.Tensor:
    """The 8 images of flat square-grid states under the dihedral group D4 (4 rotations,
    each with and without a flip): ``[..., H*W*C]`` -> ``[..., 8, H*W*C]``, image 0 the
    identity. The grid model (an isotropic 9-point Laplacian on a periodic square grid,
    homogeneous parameters) commutes with every one of them, so the image of a
    trajectory is a trajectory of the same environment (tested against the solver)."""
    h, w = shape
    if h != w:
        raise ValueError(f"D4 images need a square grid, got {shape}")
    grid = x.reshape(*x.shape[:-1], h, w, channels)
    flipped = grid.flip(-3)
    out = [torch.rot90(g, k, dims=(-3, -2)) for g in (grid, flipped) for k in range(4)]
    return torch.stack(out, dim=-4).reshape(*x.shape[:-1], 8, x.shape[-1])


def augment_d4(y0: torch.Tensor, traj: torch.Tensor, shape: tuple[int, int],
               channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Training trajectories y0 ``[E, K, S]``, traj ``[E, K, T, S]`` -> their D4 images,
    ``[E, 8K, S]`` and ``[E, 8K, T, S]`` (the 8 images of trajectory k consecutive)."""
    e, k, t, s = traj.shape
    imgs = d4_images(traj, shape, channels)                 # [E, K, T, 8, S]
    traj8 = imgs.permute(0, 1, 3, 2, 4).reshape(e, 8 * k, t, s)
    return traj8[:, :, 0], traj8
