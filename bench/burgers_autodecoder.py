"""Can a learned field decoder identify a Burgers task from its 10 support points?

    OMP_NUM_THREADS=1 python bench/burgers_autodecoder.py TRAIN.h5 EVAL.h5 [EVAL.h5 ...] \
        [--steps 6000] [--code-dim 16] [--code learned|basis] [--finetune]
        [--physics-nu LO:HI] [--no-nu] [--symmetry]

A probe of the question behind the Burgers new-regime result (docs/results.md): the
equation's own solver recovers every task from K = 10 points (system identification,
median query MSE ~1e-15), while no network init beats its random init by much. Here a
decoder u(t, x; z, ν) — an MLP of (2t − 1, sin/cos kπx for k = 1..4, a per-task code
z ∈ R^d, log ν scaled to the training box) — is trained as an auto-decoder on the
training store's full fields (per-task codes learned jointly with the weights, 32
tasks × 512 random grid points per Adam step, cosine schedule, code prior 1e-4 |z|²).
On the validation store each task's code is then fitted by L-BFGS (the weights fixed,
ν known):

- ``oracle``: to 2000 random points of the task's full field (what the decoder can
  represent at all);
- ``support``: to the task's 10 stored support points, with a prior pull toward the
  mean training code, with and without the equation residual at 256 collocation
  points (weight λ, residual divided by the training store's spread of u_t, as
  ``scimeta evaluate`` does), from the mean code and from the 5 training codes that
  fit the support points best (the lowest final loss kept).

``--code basis`` replaces the learned code by one the family's own structure makes
identifiable: the six coefficients of u(0, x) on sin kπx, cos kπx, k = 1..3 (the basis
the family draws its initial states from; read exactly off each task's stored field at
t = 0), given to the decoder in training rather than learned; the table then also has
the decoder's error at the task's *true* coefficients (its floor). ``--finetune`` adds
the package's usual last step: the code fitted to the data, then the code and every
weight by L-BFGS on data + residual (50 steps), and the same adaptation from a decoder
of the same shape with random weights (this probe's own random init).
``--physics-nu LO:HI`` (with ``--code basis``) adds to each training step, beside the
field data, the equation's residual and the initial-state misfit on 16 training
initial states at viscosities log-uniform in [LO, HI] — a range that may reach below
the training store's: no solved field is needed there, since the code *is* u(0, x).
``--symmetry`` (with ``--code basis``) builds the decoder on the equation's scaling
symmetry (u -> a u(a t, x) maps viscosity ν to a ν): every task is mapped to one
reference viscosity, so a task outside the training box is one the decoder has seen
whenever its Reynolds number (amplitude / ν) is inside the training tasks' range.
Each EVAL store (validation band, or draws made for the probe) gets its own table.

Prints the median and quartiles of the query MSE (the stored 100 query points, in
units of the spread of u squared, as ``scimeta evaluate`` reports them). Compare with
the random init's 0.32 on the same 50 validation tasks (L-BFGS + residual, 50 steps).
"""

from __future__ import annotations

import argparse
import copy
import csv
import math
import time
from pathlib import Path

import numpy as np
import torch
from burgers_reynolds import reynolds  # this folder's script: Re defined in one place

from scimeta.data import TaskReader
from scimeta.train.setup import derivative_scale, normalization

MODES = 4
BASIS = 3  # the Burgers family draws u(0, x) from modes 1..3 of the period 2


class Decoder(torch.nn.Module):
    """u(t, x; z, ν) in units of the training spread of u.

    With ``symmetry`` the decoder is built on Burgers' scaling symmetry: if u(t, x)
    solves u_t + u u_x = ν u_xx from u0, then a u(a t, x) solves it at viscosity a ν
    from a u0. With a = ν / ν_ref (ν_ref the geometric mean of the training box) every
    task is mapped to the one viscosity ν_ref: u(t, x; z, ν) = a D(a t, x; z / a), and
    D never sees ν. A task outside the training box whose Reynolds number (amplitude /
    ν) lies inside the training tasks' range is then a task the decoder has seen."""

    def __init__(self, code_dim: int, width: int, use_nu: bool,
                 nu_box: tuple[float, float], symmetry: bool = False) -> None:
        super().__init__()
        self.code_dim, self.use_nu, self.symmetry = code_dim, use_nu and not symmetry, symmetry
        self.log_lo, self.log_hi = math.log(nu_box[0]), math.log(nu_box[1])
        self.nu_ref = math.exp((self.log_lo + self.log_hi) / 2)
        d_in = 1 + 2 * MODES + code_dim + int(self.use_nu)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(d_in, width), torch.nn.Tanh(), torch.nn.Linear(width, width),
            torch.nn.Tanh(), torch.nn.Linear(width, width), torch.nn.Tanh(),
            torch.nn.Linear(width, 1))

    def forward(self, t: torch.Tensor, x: torch.Tensor, z: torch.Tensor,
                nu: torch.Tensor) -> torch.Tensor:
        """t, x ``[B, N]`` (s, m; x periodic on [-1, 1)), z ``[B, d]``, nu ``[B]`` -> ``[B, N]``."""
        if self.symmetry:
            a = (nu / self.nu_ref)[:, None]
            return a * self.reduced(a * t, x, z / a, nu)
        return self.reduced(t, x, z, nu)

    def reduced(self, t: torch.Tensor, x: torch.Tensor, z: torch.Tensor,
                nu: torch.Tensor) -> torch.Tensor:
        k = torch.arange(1, MODES + 1, dtype=t.dtype) * math.pi
        feats = [2 * t[..., None] - 1, torch.sin(k * x[..., None]), torch.cos(k * x[..., None]),
                 z[:, None, :].expand(*t.shape, self.code_dim)]
        if self.use_nu:
            s = 2 * (torch.log(nu) - self.log_lo) / (self.log_hi - self.log_lo) - 1
            feats.append(s[:, None, None].expand(*t.shape, 1))
        return self.net(torch.cat(feats, -1))[..., 0]


def grid(reader: TaskReader) -> tuple[torch.Tensor, torch.Tensor]:
    (x,) = reader.meta.space
    return (torch.as_tensor(np.asarray(reader.meta.time), dtype=torch.float32),
            torch.as_tensor(np.asarray(x), dtype=torch.float32))


def basis_codes(reader: TaskReader, scale: float) -> torch.Tensor:
    """Each task's u(0, x) / scale in the family's initial-state basis, ``[n, 2 * BASIS]``:
    the coefficients of sin(kπx) and cos(kπx), k = 1..BASIS (exact on the periodic grid,
    since the family draws u(0, x) from these modes alone)."""
    (x,) = reader.meta.space
    k = np.arange(1, BASIS + 1)[:, None] * np.pi * np.asarray(x)[None]
    u0 = np.stack([reader.fields(i)[0, :, 0] for i in range(len(reader))]) / scale
    n = u0.shape[1]
    return torch.as_tensor(np.concatenate([2 / n * u0 @ np.sin(k).T, 2 / n * u0 @ np.cos(k).T],
                                          axis=1), dtype=torch.float32)


def residual_loss(dec: Decoder, tc: torch.Tensor, xc: torch.Tensor, z: torch.Tensor,
                  nu: torch.Tensor, u_scale: float, dydt: float) -> torch.Tensor:
    """Mean square of (u_t + u u_x − ν u_xx) / dydt at ``tc``, ``xc`` ``[B, N]``."""
    tt, xx = tc.clone().requires_grad_(True), xc.clone().requires_grad_(True)
    u = dec(tt, xx, z, nu) * u_scale
    ut, ux = torch.autograd.grad(u.sum(), (tt, xx), create_graph=True)
    uxx = torch.autograd.grad(ux.sum(), xx, create_graph=True)[0]
    return (((ut + u * ux - nu[:, None] * uxx) / dydt) ** 2).mean()


def physics_terms(dec: Decoder, codes: torch.Tensor, nu_box: tuple[float, float],
                  g: torch.Generator, u_scale: float, dydt: float) -> torch.Tensor:
    """Residual + initial-state loss on 16 training initial states at viscosities drawn
    log-uniformly from ``nu_box`` (no solved field needed: the code is u(0, x))."""
    b = torch.randint(0, len(codes), (16,), generator=g)
    lo, hi = math.log(nu_box[0]), math.log(nu_box[1])
    nu = torch.exp(lo + (hi - lo) * torch.rand(16, generator=g))
    tc, xc = torch.rand(16, 256, generator=g), torch.rand(16, 256, generator=g) * 2 - 1
    x0 = torch.rand(16, 256, generator=g) * 2 - 1
    k = torch.arange(1, BASIS + 1, dtype=x0.dtype) * math.pi * x0[..., None]
    z = codes[b]
    u0 = (torch.sin(k) * z[:, None, :BASIS]).sum(-1) + (torch.cos(k) * z[:, None, BASIS:]).sum(-1)
    initial = ((dec(torch.zeros_like(x0), x0, z, nu) - u0) ** 2).mean()
    return residual_loss(dec, tc, xc, z, nu, u_scale, dydt) + initial


def train(reader: TaskReader, args: argparse.Namespace, scale: float, dydt: float
          ) -> tuple[Decoder, torch.Tensor]:
    fields = torch.as_tensor(np.stack([reader.fields(i)[..., 0] for i in range(len(reader))]),
                             dtype=torch.float32) / scale
    nu = torch.as_tensor(reader.params[:, 0], dtype=torch.float32)
    t, x = grid(reader)
    box = (float(nu.min()), float(nu.max()))
    dec = Decoder(args.code_dim, args.width, not args.no_nu, box, args.symmetry)
    if args.code == "basis":
        # the code is each task's initial state in the family's own basis, not learned
        codes = basis_codes(reader, scale)
        opt = torch.optim.Adam(dec.parameters(), lr=1e-3)
    else:
        codes = torch.nn.Parameter(torch.zeros(len(reader), args.code_dim))
        opt = torch.optim.Adam([{"params": dec.parameters(), "lr": 1e-3},
                                {"params": [codes], "lr": 1e-2}])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps)
    g = torch.Generator().manual_seed(0)
    n, nt, nx = fields.shape
    for _ in range(args.steps):
        b = torch.randint(0, n, (32,), generator=g)
        ti = torch.randint(0, nt, (32, 512), generator=g)
        xi = torch.randint(0, nx, (32, 512), generator=g)
        pred = dec(t[ti], x[xi], codes[b], nu[b])
        loss = ((pred - fields[b[:, None], ti, xi]) ** 2).mean()
        if args.code == "learned":
            loss = loss + 1e-4 * (codes[b] ** 2).sum(-1).mean()
        if args.physics_nu:
            loss = loss + physics_terms(dec, codes, args.physics_nu, g, scale, dydt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    for p in dec.parameters():
        p.requires_grad_(False)
    return dec, codes.detach()


def fit_code(dec: Decoder, start: torch.Tensor, mean: torch.Tensor, x: torch.Tensor,
             y: torch.Tensor, nu: torch.Tensor, prior: float, lam: float,
             colloc: tuple[torch.Tensor, torch.Tensor], u_scale: float, dydt: float,
             iters: int, weights: bool = False) -> tuple[torch.Tensor, float]:
    """L-BFGS on one task's code (and, with ``weights``, on all of ``dec``'s weights,
    which the caller then owns); returns the code and the final data + residual loss."""
    z = start.clone()[None].requires_grad_(True)
    params = [z]
    if weights:
        for p in dec.parameters():
            p.requires_grad_(True)
        params += list(dec.parameters())
    tc, xc = colloc

    def residual() -> torch.Tensor:
        return residual_loss(dec, tc, xc, z, nu, u_scale, dydt)

    def data() -> torch.Tensor:
        return ((dec(x[..., 0], x[..., 1], z, nu) - y) ** 2).mean()

    opt = torch.optim.LBFGS(params, lr=1, max_iter=iters, line_search_fn="strong_wolfe",
                            history_size=20)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = data() + prior * ((z - mean) ** 2).sum() + (lam * residual() if lam else 0)
        loss.backward()
        return loss

    opt.step(closure)
    final = data() + (lam * residual() if lam else 0)
    return z.detach(), float(final.detach())


def evaluate(path: str, dec: Decoder, codes: torch.Tensor, args: argparse.Namespace,
             scale: float, dydt: float) -> None:
    """Fit the first ``args.tasks`` tasks of the store at ``path`` and print the table."""
    mean = codes.mean(0)
    dec_box = (math.exp(dec.log_lo), math.exp(dec.log_hi))
    va = TaskReader(path, in_memory=True)
    n = min(args.tasks, len(va))
    b = va.batch(np.arange(n))
    nu = torch.as_tensor(va.params[:n, 0], dtype=torch.float32)
    t, x = grid(va)
    g = torch.Generator().manual_seed(5)
    true_codes = basis_codes(va, scale)[:n] if args.code == "basis" else None
    rows: dict[str, list[float]] = {}
    for i in range(n):
        ni = nu[i:i + 1]
        sx, sy = b.support_x[i:i + 1], b.support_y[i:i + 1, :, 0] / scale
        qx, qy = b.query_x[i:i + 1], b.query_y[i:i + 1, :, 0] / scale

        def query(z: torch.Tensor, model: Decoder = dec, qx=qx, qy=qy, ni=ni) -> float:
            with torch.no_grad():
                return float(((model(qx[..., 0], qx[..., 1], z, ni) - qy) ** 2).mean())

        f = torch.as_tensor(va.fields(i)[..., 0], dtype=torch.float32) / scale
        ti = torch.randint(0, len(t), (1, 2000), generator=g)
        xi = torch.randint(0, len(x), (1, 2000), generator=g)
        colloc = (torch.rand(1, 256, generator=g), torch.rand(1, 256, generator=g) * 2 - 1)
        z, _ = fit_code(dec, mean, mean, torch.stack([t[ti], x[xi]], -1), f[ti, xi], ni,
                        1e-5, 0.0, colloc, scale, dydt, 200)
        rows.setdefault("oracle: code fitted to 2000 field points", []).append(query(z))
        if true_codes is not None:
            rows.setdefault("oracle: the task's true initial-state coefficients", []).append(
                query(true_codes[i:i + 1]))
        with torch.no_grad():
            fit = ((dec(sx[..., 0].expand(len(codes), -1), sx[..., 1].expand(len(codes), -1),
                        codes, ni.expand(len(codes))) - sy) ** 2).mean(1)
        for lam in (0.0, 1.0):
            z, _ = fit_code(dec, mean, mean, sx, sy, ni, 1e-2, lam, colloc, scale, dydt, 50)
            rows.setdefault(f"support, λ = {lam:g}, from the mean code", []).append(query(z))
            if lam == 0.0:
                z_data = z  # the code fitted to the data alone, where --finetune starts
            best = min((fit_code(dec, codes[j], mean, sx, sy, ni, 1e-3, lam, colloc, scale,
                                 dydt, 50) for j in fit.argsort()[:5]), key=lambda r: r[1])
            rows.setdefault(f"support, λ = {lam:g}, best of 5 starts", []).append(
                query(best[0]))
        if args.finetune:
            # from the code fitted to the data alone, code and every weight together by
            # L-BFGS on data + residual (the package's lbfgs+physics adaptation)
            for lam in (0.1, 1.0):
                model = copy.deepcopy(dec)
                zt, _ = fit_code(model, z_data[0], mean, sx, sy, ni, 0.0, lam, colloc, scale,
                                 dydt, 50, weights=True)
                rows.setdefault(f"support: code (λ = 0), then code + weights, λ = {lam:g}",
                                []).append(query(zt, model))
            # the same adaptation from a decoder of the same shape with random weights
            model = Decoder(args.code_dim, args.width, not args.no_nu, dec_box, args.symmetry)
            zt, _ = fit_code(model, torch.zeros_like(mean), mean, sx, sy, ni, 0.0, 1.0, colloc,
                             scale, dydt, 50, weights=True)
            rows.setdefault("random decoder weights, code + weights, λ = 1", []).append(
                query(zt, model))
    print(f"\n{n} tasks ({va.path.name}); query MSE in units of the spread²\n")
    print("| code fitted to | median | 25 % | 75 % |\n|---|---|---|---|")
    for label, vals in rows.items():
        q = np.quantile(vals, [0.5, 0.25, 0.75])
        print(f"| {label} | {q[0]:.3f} | {q[1]:.3f} | {q[2]:.3f} |")
    if args.per_task:
        # one line per task: the store, ν, the Reynolds number and every row's query MSE
        re = reynolds(va)[:n]
        new = not Path(args.per_task).exists()
        with open(args.per_task, "a", newline="") as fh:
            out = csv.writer(fh)
            if new:
                out.writerow(["store", "task", "nu", "reynolds", *rows])
            for i in range(n):
                out.writerow([va.path.name, i, float(nu[i]), float(re[i]),
                              *(vals[i] for vals in rows.values())])


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("train")
    ap.add_argument("validation", nargs="+", help="stores to evaluate on (each its own table)")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--code-dim", type=int, default=16)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--code", choices=("learned", "basis"), default="learned",
                    help="learned: a free per-task code (auto-decoder); basis: the task's "
                         "initial state in the family's sine/cosine basis (6 numbers)")
    ap.add_argument("--finetune", action="store_true",
                    help="also adapt every weight after the code (L-BFGS, data + residual)")
    ap.add_argument("--physics-nu", default=None, metavar="LO:HI",
                    help="with --code basis: also train on the residual and the initial "
                         "state at viscosities log-uniform in [LO, HI] (no field data)")
    ap.add_argument("--no-nu", action="store_true", help="the decoder does not see ν")
    ap.add_argument("--symmetry", action="store_true",
                    help="with --code basis: build the decoder on Burgers' scaling symmetry "
                         "(every task mapped to one reference viscosity; see Decoder)")
    ap.add_argument("--tasks", type=int, default=50, help="tasks per store (the first N)")
    ap.add_argument("--per-task", metavar="CSV", default=None,
                    help="append each task's ν, Reynolds number and every row's MSE to CSV")
    args = ap.parse_args()
    if args.code == "basis":
        args.code_dim = 2 * BASIS
    elif args.symmetry:
        ap.error("--symmetry needs --code basis (the code must scale with the initial state)")
    if args.physics_nu:
        if args.code != "basis":
            ap.error("--physics-nu needs --code basis (the code must be the initial state)")
        try:
            lo, hi = (float(v) for v in args.physics_nu.split(":"))
        except ValueError:
            ap.error(f"--physics-nu {args.physics_nu!r}: need LO:HI, e.g. 0.01:0.2")
        if not 0 < lo < hi:
            ap.error(f"--physics-nu {args.physics_nu!r}: need 0 < LO < HI")
        args.physics_nu = (lo, hi)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    tr = TaskReader(args.train, in_memory=True)
    scale = float(normalization(tr)["y_scale"][0])
    dydt = float(derivative_scale(tr)[0])
    t0 = time.perf_counter()
    dec, codes = train(tr, args, scale, dydt)
    print(f"decoder trained in {time.perf_counter() - t0:.0f} s ({args.steps} steps, "
          f"code dim {args.code_dim}, ν input {dec.use_nu}, symmetric {dec.symmetry})")
    for path in args.validation:
        evaluate(path, dec, codes, args, scale, dydt)
    print(f"\nwall {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
