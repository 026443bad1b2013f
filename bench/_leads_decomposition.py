"""LEADS's own method (Yin et al., NeurIPS 2021) for ``bench/leads_protocol.py``.

The dynamics of environment e are modelled as ``f + g_e``: one field f shared by every
environment and one small field g_e per environment, with g_e kept small by a
penalty, so that f carries what the environments share. Read from LEADS's code
(github.com/yuan-yin/LEADS: ``forecasters.py``, ``experiments.py``,
``train_leads.py``, ``utils.py``); written here against scimeta's
:func:`~scimeta.train.forecast.fine_tune`, whose per-environment parameters (``names``)
are g's and whose shared ones are f's.

LEADS's training objective (``MultiEnvExperiment._inference``, ``min_op =
"sum_spectral"``) is the trajectory MSE averaged over environments plus
``lambda_inv * sum_e Omega_e`` with

    Omega_e = factor_lip * sum_W sigma_max(W_e)^2
              + mean over the training states y of (|g_e(y)| / (|y| + 1e-5))^2,

W_e running over g_e's weight matrices (biases left out) and the states over every
time of the update's trajectories; a weight of shape ``[out, ...]`` is taken as the
matrix ``[out, prod(...)]`` (a convolution's ``[out, in * k * k]``, as LEADS's
``w.view(height, -1)``). The norms |.| are over the state vector for a vector state
(an MLP field) and, for a field on a grid, over the channels at each grid point, the
mean then running over points too (LEADS's ``norm(dim=1)`` of ``[b, C, T, H, W]``);
the flat grid layout is channel-fastest (:class:`~scimeta.nn.ConvVectorField`).
``fine_tune`` minimises the *sum* over environments of their MSEs, E times LEADS's
mean, so :func:`leads_penalty` returns ``E * lambda_inv * Omega_e`` per environment:
the same objective up to the factor E. One departure: LEADS estimates sigma_max by 5
power iterations per update on persisted vectors, which converge to it over
training; here it is exact (``torch.linalg.matrix_norm(ord=2)``). A Fourier field's
spectral weight ``[2, in, out, m1, m2, 2]`` (two corner blocks, real/imaginary pairs;
:class:`~scimeta.nn.FourierVectorField`) counts as LEADS's two complex matrices
``weights1``, ``weights2`` viewed ``[in, out * m1 * m2]``, one sigma^2 each.

LEADS's constants (``train_leads.py``): Lotka-Volterra lambda_inv = 1/5e3,
factor_lip = 1e-2; Gray-Scott 1/1e3, 1e-2; Navier-Stokes 1/1e5, 1e-4.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.func import functional_call, vmap

from scimeta.nn import Forecaster
from scimeta.train.forecast import Penalty

#: the relative guard of LEADS's state ratio (``experiments.py``, ``_EPSILON``)
EPSILON = 1e-5
#: ``(lambda_inv, factor_lip)`` per family, from LEADS's ``train_leads.py``
CONSTANTS = {"lotka_volterra": (1 / 5e3, 1e-2), "gray_scott_leads": (1 / 1e3, 1e-2),
             "navier_stokes_forced": (1 / 1e5, 1e-4)}
PREFIX = "field.env."


class LeadsField(torch.nn.Module):
    """``f(y) + g(y)``: ``shared`` is f, ``env`` is g (give the same architecture,
    initialised independently); :func:`~scimeta.train.forecast.fine_tune` with
    ``names = env_names(model)`` gives every environment its own g."""

    def __init__(self, shared: torch.nn.Module, env: torch.nn.Module) -> None:
        super().__init__()
        self.shared = shared
        self.env = env

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.shared(y) + self.env(y)


def check_supported(family: str) -> None:
    """Refuse, naming the reason, a family LEADS gives no constants for."""
    if family not in CONSTANTS:
        raise SystemExit(f"--steps leads=N: LEADS gives no penalty constants for {family} "
                         f"(it has them for {', '.join(sorted(CONSTANTS))})")


def env_names(model: Forecaster) -> list[str]:
    """The names of g's parameters in ``model`` (a Forecaster of a LeadsField); the
    leads_protocol script checks the system first (:func:`check_supported`)."""
    return [k for k, _ in model.named_parameters() if k.startswith(PREFIX)]


def env_start(model: Forecaster, make_env: Callable[[], torch.nn.Module], n_env: int,
              seed: int) -> dict[str, torch.Tensor]:
    """The model's parameters (detached) with g stacked ``[n_env, ...]``: environment
    e's g is ``make_env()`` drawn after ``torch.manual_seed(seed + 1 + e)`` (LEADS
    initialises each g_e on its own)."""
    start = {k: v.detach() for k, v in model.named_parameters()}
    draws = []
    for e in range(n_env):
        torch.manual_seed(seed + 1 + e)
        draws.append(dict(make_env().named_parameters()))
    for name in env_names(model):
        start[name] = torch.stack([d[name[len(PREFIX):]].detach() for d in draws])
    return start


def silent_env(model: Forecaster, params: dict[str, torch.Tensor], n_env: int
               ) -> dict[str, torch.Tensor]:
    """``params`` with g replaced, for each of ``n_env`` new environments, by a copy of
    the model's own g with its last layer zeroed: g = 0, so the field starts as f
    alone (LEADS fits a fresh g_e to a new environment with f fixed)."""
    names = env_names(model)
    last_module = names[-1].rsplit(".", 1)[0]          # e.g. field.env.net.6
    last = [n for n in names if n.rsplit(".", 1)[0] == last_module]
    own = dict(model.named_parameters())
    out = {k: v for k, v in params.items() if k not in names}
    for n in names:
        v = torch.zeros_like(own[n]) if n in last else own[n].detach().clone()
        out[n] = v.unsqueeze(0).expand(n_env, *v.shape).clone()
    return out


def spectral_sq(name: str, w: torch.Tensor) -> torch.Tensor:
    """sum of sigma_max^2 over the matrices of the stacked weight ``w`` ``[E, ...]``
    (module docstring), ``[E]``."""
    n_env = w.shape[0]
    if ".spectral." in name and w.dim() == 7 and w.shape[1] == 2 and w.shape[-1] == 2:
        wc = torch.view_as_complex(w.contiguous())              # [E, 2, in, out, m1, m2]
        mats = wc.reshape(n_env, 2, wc.shape[2], -1)
        return torch.linalg.matrix_norm(mats, ord=2).pow(2).sum(dim=1)
    return torch.linalg.matrix_norm(w.reshape(n_env, w.shape[1], -1), ord=2).pow(2)


def leads_penalty(model: Forecaster, lambda_inv: float, factor_lip: float,
                  channels: int | None = None) -> Penalty:
    """LEADS's penalty per environment, scaled for ``fine_tune``'s summed loss:
    ``E * lambda_inv * Omega_e`` (module docstring), ``[E]``. ``channels``: None for
    a vector state (norms over the whole state), else the channels of a flat,
    channel-fastest grid state (norms per grid point)."""
    names = env_names(model)
    weights = [n for n in names if n.endswith("weight")]
    env = model.field.env

    def g_of(p: dict[str, torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        return functional_call(env, p, (y,))

    def penalty(phi: dict[str, torch.Tensor], y0: torch.Tensor,
                target: torch.Tensor) -> torch.Tensor:
        n_env = target.shape[0]
        spectral = sum(spectral_sq(n, phi[n]) for n in weights)
        states = target.reshape(n_env, -1, target.shape[-1])            # [E, b*T, S]
        g = vmap(g_of)({n[len(PREFIX):]: phi[n] for n in names}, states)
        c = states.shape[-1] if channels is None else channels
        g, states = g.reshape(n_env, -1, c), states.reshape(n_env, -1, c)  # per point
        ratio = (g.norm(dim=-1) / (states.norm(dim=-1) + EPSILON)).pow(2).mean(dim=-1)
        return n_env * lambda_inv * (factor_lip * spectral + ratio)

    return penalty
