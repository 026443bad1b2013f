"""Incompressible Navier-Stokes in vorticity form on the periodic unit square.

Data card
---------
Equations: omega_t + u omega_x + v omega_y = nu (omega_xx + omega_yy) + f(x, y),
(u, v) = (psi_y, -psi_x), psi_xx + psi_yy = -omega,
f = 0.1 [sin 2 pi (x + y) + cos 2 pi (x + y)].
LaTeX: \\omega_t + \\mathbf{u}\\cdot\\nabla\\omega = \\nu\\Delta\\omega + f,\\quad
\\mathbf{u} = (\\psi_y, -\\psi_x),\\quad \\Delta\\psi = -\\omega.
(The FNO/LEADS/CoDA setup: the same forcing and sign conventions.)

Parameters: ``nu`` kinematic viscosity [length^2/time], log-uniform. State:
``omega`` vorticity [1/time] and ``psi`` stream function [length^2/time] (stored
so that physics losses stay local: the residual has two components, the transport
equation and psi_xx + psi_yy + omega = 0). Domain [0, 1)^2, 32^2 stored points
(CoDA ``size = 32``); output t = 0, 1, ..., 9 (CoDA: horizon 10, dt_eval 1, frames
``arange(0, 10, 1)``).

Initial conditions: default an FNO-style Gaussian random field (:class:`FnoField`):
omega_0 = sum_m sigma (4 pi^2 |m|^2 + tau^2)^(-alpha/2) Re(z_m e^{2 pi i m.x}), z_m
complex normal with E|z|^2 = 2, alpha = 2.5, tau = 7, sigma = tau^(alpha - 1)
(CoDA data.py: ``GaussianRF(2, size, alpha=2.5, tau=7)``), over the modes of the
32^2 grid; the mean and Nyquist modes are zero. Rule ``"coda-warmup"`` (used by the
``coda-*`` regimes): that field evolved with nu = 8e-4 and the forcing for 28.5 time
units (CoDA runs T = 30 recording 20 frames every 1.5 and keeps the last, t = 28.5),
then truncated to the modes |m_i| < 16 of the stored grid.

Regimes: ``coda-train`` nu in {0.8, 0.9, 1.0, 1.1, 1.2}e-3 (CoDA train.py);
``coda-adapt`` nu in {0.85, 0.95, 1.05, 1.15}e-3 (CoDA adaptation.py); ``train`` nu
in [8e-4, 1.2e-3] without (9e-4, 1.1e-3); ``test-interpolate`` nu in [9e-4, 1.1e-3];
``test-extrapolate`` nu in [1.2e-3, 2e-3].

Solver: Fourier pseudo-spectral (streamfunction by dividing by |k|^2, velocity and
vorticity gradient spectrally, product in physical space), 2/3 dealiasing, ETDRK4
with the viscous term exact, step 0.01, solved on 64^2 (refine 2, spectral
prolongation) and stored at the 32^2 points. CoDA/FNO used Crank-Nicolson with
dt = 1e-3 directly on 32^2. Verified (tests/test_gray_scott_navier_stokes.py): the
unforced Taylor-Green mode omega = sin 2 pi x sin 2 pi y decays as e^{-8 pi^2 nu t}
(max error <= 1e-12), and with the forcing the exact solution
omega = e^{-8 pi^2 nu t} omega_0 + (1 - e^{-8 pi^2 nu t}) f / (8 pi^2 nu) is matched to
1e-11; refine 2 vs 4 agree to <= 1e-6 relative and step 0.01 vs 0.005 to <= 1e-7 on
a random field at nu = 1e-3 over t <= 9.

Family ``navier_stokes_forced`` (:class:`NavierStokesForced`): the same equations with
the forcing's wave vectors as parameters, f = 0.1 [sin 2 pi (a_x x + a_y y) + cos 2 pi
(b_x x + b_y y)], integer wave numbers [1/m] (others are refused by name). Its
``train``/``test-*`` boxes hold a = b = (1, 1), where it equals ``navier_stokes`` bit
for bit, and its ``coda-*`` regimes are ``navier_stokes``'s with a = b = (1, 1) (the
same data); regime ``leads``: LEADS's four environments (nu = 1e-3; (a, b) = (1,1,1,1),
(1,1,1,2), (1,1,2,1), (1,2,2,1); LEADS ``datasets/__init__.py``, ``param_ns``) with
the initial rule ``leads-warmup`` (the FNO field evolved 28.5 time units at nu = 1e-3
under the first forcing, LEADS ``datasets/ns.py``). Verified
(tests/test_navier_stokes_forced.py): with |a| = |b| and omega_0 in the same
eigenspace the Jacobian vanishes and omega = e^{-lam nu t} omega_0 + (1 - e^{-lam nu
t}) f / (lam nu), lam = 4 pi^2 |a|^2, is matched to 1e-11; per-task forcings in one
batch equal one-by-one solves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from scimeta.errors import ConfigError
from scimeta.family import SolverInfo
from scimeta.params import ParamSpec, Regime, TimeGrid
from scimeta.refined import RefinedSpectralFamily

CODA_NU = (0.8e-3, 0.9e-3, 1.0e-3, 1.1e-3, 1.2e-3)
CODA_ADAPT_NU = (0.85e-3, 0.95e-3, 1.05e-3, 1.15e-3)
WARMUP_NU = 8e-4
WARMUP_TIME = 28.5


@dataclass(frozen=True)
class FnoField:
    """FNO/CoDA Gaussian random field on a periodic box (see the module docstring).

    Returns ``[*space, channels]``; only the first channel is drawn, the others are 0.
    """

    alpha: float = 2.5
    tau: float = 7.0

    def sample(self, rng: np.random.Generator, coords, lengths, channels: int = 1) -> np.ndarray:
        import scipy.fft as sfft  # on first use: listing families stays fast

        n = [len(c) for c in coords]
        m = np.meshgrid(*(np.fft.fftfreq(k, 1.0 / k) for k in n), indexing="ij")
        lam = sum(4 * math.pi**2 * (mi / (length)) ** 2 for mi, length in zip(m, lengths,
                                                                              strict=True))
        sigma = self.tau ** (self.alpha - 1.0)
        amp = sigma * (lam + self.tau**2) ** (-self.alpha / 2)
        amp[(0,) * len(n)] = 0.0
        for mi, k in zip(m, n, strict=True):
            amp[np.abs(mi) == k // 2] = 0.0
        z = rng.standard_normal(amp.shape) + 1j * rng.standard_normal(amp.shape)
        w = np.real(sfft.ifftn(amp * z) * np.prod(n))
        out = np.zeros((*n, channels))
        out[..., 0] = w
        return out


def forcing(x, y, amplitude: float = 0.1, a=(1, 1), b=(1, 1), xp=np):
    """``amplitude [sin 2 pi (a_x x + a_y y) + cos 2 pi (b_x x + b_y y)]`` [1/time^2],
    broadcasting; ``a``, ``b`` wave numbers (numbers or arrays), ``xp`` numpy or torch.
    The defaults are the FNO/CoDA forcing of ``navier_stokes``."""
    return amplitude * (xp.sin(2 * math.pi * (a[0] * x + a[1] * y))
                        + xp.cos(2 * math.pi * (b[0] * x + b[1] * y)))


class NavierStokes(RefinedSpectralFamily):
    name = "navier_stokes"
    summary = "2D incompressible Navier-Stokes, vorticity form, forced, periodic unit square"
    equation = ("omega_t + psi_y*omega_x - psi_x*omega_y = nu*(omega_xx + omega_yy) + f; "
                "psi_xx + psi_yy = -omega; f = 0.1*(sin(2*pi*(x+y)) + cos(2*pi*(x+y)))")
    equation_latex = (r"\omega_t + \psi_y\omega_x - \psi_x\omega_y = \nu\Delta\omega + f,\quad "
                      r"\Delta\psi = -\omega")
    params = (ParamSpec("nu", "m^2/s", (0.0, math.inf), "kinematic viscosity",
                        distribution="log-uniform"),)
    state_names = ("omega", "psi")
    state_units = ("1/s", "m^2/s")
    time_unit = "s"
    time = TimeGrid(0.0, 9.0, 10)
    regimes = {
        "train": Regime("train", box={"nu": (8e-4, 1.2e-3)}, exclude=({"nu": (9e-4, 1.1e-3)},),
                        description="nu in [8e-4, 1.2e-3] minus (9e-4, 1.1e-3)"),
        "test-interpolate": Regime("test-interpolate", box={"nu": (9e-4, 1.1e-3)},
                                   description="nu in [9e-4, 1.1e-3]"),
        "test-extrapolate": Regime("test-extrapolate", box={"nu": (1.2e-3, 2e-3)},
                                   description="nu in [1.2e-3, 2e-3]"),
        "coda-train": Regime("coda-train", points=tuple((v,) for v in CODA_NU),
                             initial="coda-warmup", description="CoDA viscosities (5)"),
        "coda-adapt": Regime("coda-adapt", points=tuple((v,) for v in CODA_ADAPT_NU),
                             initial="coda-warmup", description="CoDA adaptation viscosities"),
    }
    domain = {"x": (0.0, 1.0), "y": (0.0, 1.0)}
    shape = {"x": 32, "y": 32}
    initial = FnoField()
    initial_rules = ("coda-warmup",)
    refine: ClassVar[int] = 2
    n_evolved: ClassVar[int] = 1
    forcing_amplitude: ClassVar[float] = 0.1
    resolution_tol = 1e-6
    default_max_step = 1e-2
    spatial_derivatives = ("x", "y", "xx", "yy")
    solver = SolverInfo("scimeta.solvers.etdrk4", "Fourier pseudo-spectral + ETDRK4", dt=1e-2,
                        note="solved on 64^2 (refine 2), stored at 32^2; 2/3 dealiasing")

    #: initial-condition rule -> the parameter vector its warm-up solve runs with
    warmups: ClassVar[dict[str, tuple[float, ...]]] = {"coda-warmup": (WARMUP_NU,)}

    def forcing_grid(self, x: np.ndarray, y: np.ndarray, params: np.ndarray) -> np.ndarray:
        """f [1/time^2] on grid points ``x``, ``y`` ``[nx, ny]``: ``[N or 1, nx, ny]`` for
        params ``[N, P]``; here the one fixed forcing of every task."""
        return forcing(x, y, self.forcing_amplitude)[None]

    def forcing_torch(self, x, y, params):
        """f at collocation points (torch): x, y ``[..., 1]``, params ``[..., P]``."""
        import torch

        return forcing(x, y, self.forcing_amplitude, xp=torch)

    def _forcing_hat(self, grid, params) -> np.ndarray:
        """Spectrum of f per task, ``[N or 1, *modes, 1]`` (cached for the last params)."""
        key = (tuple(grid.shape), np.asarray(params).tobytes())
        cached = getattr(self, "_forcing_cache", None)
        if cached is None or cached[0] != key:
            x, y = np.meshgrid(*grid.coords(), indexing="ij")
            cached = (key, grid.fft(self.forcing_grid(x, y, params)[..., None]))
            self._forcing_cache = cached
        return cached[1]

    def linear_symbol(self, grid, params):
        return -self.per_task(grid, params[:, 0]) * grid.expand(grid.k2())

    def streamfunction(self, grid, wh: np.ndarray) -> np.ndarray:
        """Spectrum of psi from that of omega (``-|k|^2 psi = -omega``, mean psi = 0)."""
        k2 = grid.expand(grid.k2())
        return wh / np.where(k2 > 0, k2, np.inf)

    def nonlinear(self, grid, uh, params):
        ph = self.streamfunction(grid, uh)
        vel_x = grid.ifft(grid.derivative(ph, 1))
        vel_y = -grid.ifft(grid.derivative(ph, 0))
        w_x = grid.ifft(grid.derivative(uh, 0))
        w_y = grid.ifft(grid.derivative(uh, 1))
        return self._forcing_hat(grid, params) - grid.fft(vel_x * w_x + vel_y * w_y)

    def observe(self, grid, uh):
        return np.concatenate([grid.ifft(uh), grid.ifft(self.streamfunction(grid, uh))], -1)

    def initial_state(self, rule, rng):
        state = super().initial_state(None, rng)
        if rule is None:
            return self._with_psi(state[..., 0])
        if rule in self.warmups:
            fields, _ = self.solve_batch(np.array([self.warmups[rule]]), state[None],
                                         np.array([0.0, WARMUP_TIME]))
            return self._with_psi(fields[0, -1, ..., 0])
        return super().initial_state(rule, rng)

    def _with_psi(self, omega: np.ndarray) -> np.ndarray:
        """Band-limit omega ``[nx, ny]`` to |m_i| < n_i / 2 and append psi: ``[nx, ny, 2]``."""
        grid = self.stored_grid()
        wh = grid.fft(omega[None, ..., None])
        keep = np.ones(grid.modes, dtype=bool)
        for k, n, length in zip(grid.k, grid.shape, grid.lengths, strict=True):
            keep = keep & (np.abs(k) * length / (2 * np.pi) < n // 2)
        wh = wh * grid.expand(keep.astype(float))
        return self.observe(grid, wh)[0]

    def residual(self, t, y, dydt, params, **derivs):
        import torch

        nu = self.param_columns(params)[0]
        space = derivs["space"]
        f = self.forcing_torch(space[..., :1], space[..., 1:2], params)
        dx, dy, dxx, dyy = (derivs[k] for k in ("d_x", "d_y", "d_xx", "d_yy"))
        w_x, w_y, p_x, p_y = dx[..., :1], dy[..., :1], dx[..., 1:], dy[..., 1:]
        transport = (dydt[..., :1] + p_y * w_x - p_x * w_y
                     - nu * (dxx[..., :1] + dyy[..., :1]) - f)
        poisson = dxx[..., 1:] + dyy[..., 1:] + y[..., :1]
        return torch.cat([transport, poisson], dim=-1)


#: LEADS's four environments (Yin et al. 2021, ``datasets/__init__.py``, ``param_ns``):
#: nu = 1e-3 and f = 0.1 [sin 2 pi (a . x) + cos 2 pi (b . x)] with (a_x, a_y, b_x, b_y)
LEADS_FORCINGS = ((1, 1, 1, 1), (1, 1, 1, 2), (1, 1, 2, 1), (1, 2, 2, 1))
LEADS_NU = 1e-3
#: the forcing's wave-number parameters, in order after nu
WAVES = ("a_x", "a_y", "b_x", "b_y")
_FIXED = {n: (1.0, 1.0) for n in WAVES}


class NavierStokesForced(NavierStokes):
    """:class:`NavierStokes` with the forcing's wave vectors as parameters (LEADS's grid).

    f = 0.1 [sin 2 pi (a_x x + a_y y) + cos 2 pi (b_x x + b_y y)]; a = b = (1, 1) is the
    fixed forcing of ``navier_stokes`` (the box regimes hold it, so they reproduce that
    family's data exactly). Wave numbers must be integers (a periodic forcing); the
    solver refuses others by name. Regime ``leads``: LEADS's 4 environments at
    nu = 1e-3, initial rule ``leads-warmup`` (the FNO field evolved with nu = 1e-3 and
    the first environment's forcing for 28.5 time units, as LEADS's ``datasets/ns.py``).
    """

    name = "navier_stokes_forced"
    summary = "2D Navier-Stokes, vorticity form, forcing wave vectors as parameters (LEADS)"
    equation = ("omega_t + psi_y*omega_x - psi_x*omega_y = nu*(omega_xx + omega_yy) + f; "
                "psi_xx + psi_yy = -omega; "
                "f = 0.1*(sin(2*pi*(a_x*x + a_y*y)) + cos(2*pi*(b_x*x + b_y*y)))")
    params = NavierStokes.params + tuple(
        ParamSpec(n, "1/m", (-16.0, 16.0), f"forcing wave number ({term}, integer)")
        for n, term in zip(WAVES, ("sine, x", "sine, y", "cosine, x", "cosine, y"),
                           strict=True))
    regimes = {
        **{k: Regime(k, box={**r.box_bounds, **_FIXED},
                     exclude=tuple({**b, **_FIXED} for b in r.exclude),
                     description=r.description + ", a = b = (1, 1)")
           for k, r in NavierStokes.regimes.items() if r.box is not None},
        **{k: Regime(k, points=tuple((*p, 1.0, 1.0, 1.0, 1.0) for p in r.points or ()),
                     initial=r.initial, description=r.description + ", a = b = (1, 1)")
           for k, r in NavierStokes.regimes.items() if r.points is not None},
        "leads": Regime("leads", points=tuple((LEADS_NU, *f) for f in LEADS_FORCINGS),
                        initial="leads-warmup", description="LEADS forcings (4), nu = 1e-3"),
    }
    initial_rules = ("coda-warmup", "leads-warmup")
    warmups: ClassVar[dict[str, tuple[float, ...]]] = {
        "coda-warmup": (WARMUP_NU, *LEADS_FORCINGS[0]),
        "leads-warmup": (LEADS_NU, *LEADS_FORCINGS[0])}

    def forcing_grid(self, x, y, params):
        a_x, a_y, b_x, b_y = (np.asarray(params)[:, i, None, None] for i in range(1, 5))
        return forcing(x, y, self.forcing_amplitude, (a_x, a_y), (b_x, b_y))

    def forcing_torch(self, x, y, params):
        import torch

        a_x, a_y, b_x, b_y = self.param_columns(params)[1:]
        return forcing(x, y, self.forcing_amplitude, (a_x, a_y), (b_x, b_y), xp=torch)

    def override(self, regime, bounds):
        """As the base class, and a wave number's bounds must be one integer (a range
        would draw non-periodic forcings): refused here, before any task is solved."""
        for name in WAVES:
            lo, hi = bounds.get(name, (1.0, 1.0))
            if lo != hi or lo != round(lo):
                raise ConfigError(f"--param {name}={lo:g}:{hi:g} is not allowed; forcing "
                                  "wave numbers must be one integer (low = high), e.g. "
                                  f"{name}=2:2")
        return super().override(regime, bounds)

    def solve_batch(self, params, y0, t):
        p = np.atleast_2d(np.asarray(params, dtype=np.float64))
        waves = p[:, 1:5]
        bad = np.argwhere(waves != np.round(waves))
        if len(bad):
            row, col = bad[0]
            name, value = self.params[col + 1].name, float(waves[row, col])
            raise ConfigError(f"{self.name}: {name}={value!r} "
                              "is not allowed; forcing wave numbers must be integers (a "
                              "forcing periodic on the unit square)")
        return super().solve_batch(p, y0, t)
