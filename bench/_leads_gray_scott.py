"""Gray-Scott pieces of ``bench/leads_protocol.py``: LEADS's grid model, its RK45 check.

The family ``gray_scott_leads`` is LEADS's semi-discrete model (9-point Laplacian at
dx = 1 on a periodic 32 x 32 grid); its stores are solved with ETDRK4, not with
``solve_ivp``, so the generic ODE functions of ``_leads_common`` do not apply. Here:
the exact field in torch (for the discretisation floor under the model's RK4 steps)
and RK45 at scipy's defaults on the same grid model (what LEADS's generator,
``datasets/gs.py``, ran), to measure how far the published solver lies from the
stored data. States are flat ``[..., H * W * 2]`` (``[..., H, W, (u, v)]`` reshaped),
the layout of :class:`~scimeta.data.EnvironmentReader`. Nothing here prints.
"""

from __future__ import annotations

import numpy as np
import torch

from scimeta.data import EnvironmentReader
from scimeta.problems.gray_scott import D_U, D_V

FAMILY = "gray_scott_leads"
SHAPE = (32, 32)
#: LEADS's 9-point stencil (dx = 1): centre -3, edges 1/2, corners 1/4
_EDGES = ((1, 0), (-1, 0), (0, 1), (0, -1))
_CORNERS = ((1, 1), (1, -1), (-1, 1), (-1, -1))


def laplacian(a, roll):
    """9-point periodic Laplacian over the two grid axes (``-3``, ``-2``) of ``a``
    ``[..., H, W, C]``; ``roll`` is ``np.roll`` or ``torch.roll``."""
    edges = sum(roll(a, s, (-3, -2)) for s in _EDGES)
    corners = sum(roll(a, s, (-3, -2)) for s in _CORNERS)
    return -3.0 * a + 0.5 * edges + 0.25 * corners


def _rhs(y, f, kill, roll, cat):
    """Gray-Scott on the grid; y ``[..., H, W, 2]``, f and kill broadcastable."""
    u, v = y[..., 0:1], y[..., 1:2]
    lap = laplacian(y, roll)
    uv2 = u * v * v
    du = D_U * lap[..., 0:1] - uv2 + f * (1.0 - u)
    dv = D_V * lap[..., 1:2] + uv2 - (f + kill) * v
    return cat([du, dv])


class GrayScottGridField(torch.nn.Module):
    """The exact field of ``gray_scott_leads`` in torch, on flat states; ``p`` = (F, k)
    (a parameter, so that it can be set per environment through ``torch.func``)."""

    def __init__(self) -> None:
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(2))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        grid = y.reshape(*y.shape[:-1], *SHAPE, 2)
        out = _rhs(grid, self.p[0], self.p[1], torch.roll,
                   lambda xs: torch.cat(xs, dim=-1))
        return out.reshape(y.shape)


def rk45_trajectory(params: np.ndarray, y0: np.ndarray, t: np.ndarray) -> np.ndarray:
    """RK45 at scipy's defaults (rtol 1e-3, atol 1e-6) on the grid model from flat y0
    ``[H*W*2]`` over ``t`` ``[T]``: ``[T, H*W*2]`` (LEADS's generator's solve)."""
    from scipy.integrate import solve_ivp

    f, kill = float(params[0]), float(params[1])

    def rhs(_t: float, y: np.ndarray) -> np.ndarray:
        grid = y.reshape(*SHAPE, 2)
        return _rhs(grid, f, kill, np.roll,
                    lambda xs: np.concatenate(xs, axis=-1)).reshape(-1)

    sol = solve_ivp(rhs, (float(t[0]), float(t[-1])), np.asarray(y0, dtype=np.float64),
                    t_eval=t, method="RK45", rtol=1e-3, atol=1e-6)
    if not sol.success or sol.y.shape[1] != len(t):
        raise RuntimeError(f"RK45 failed for (F, k) = ({f}, {kill}): {sol.message}")
    return sol.y.T


def published_solver_error(reader: EnvironmentReader) -> float:
    """MSE between RK45 at scipy's defaults (from each stored test trajectory's y0) and
    the stored (accurate, ETDRK4) test trajectories, over every time and point."""
    t = reader.time.double().numpy()
    errs = []
    for e in range(len(reader)):
        for y in reader.trajectories(e, query_store=True).double().numpy():
            errs.append(np.mean((rk45_trajectory(reader.params[e], y[0], t) - y) ** 2))
    return float(np.mean(errs))
