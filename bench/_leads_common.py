"""Pieces of ``bench/leads_protocol.py``: stores, floors, models, MAML and the grid run.

Kept apart so that the script holds only the systems, sizes and the table. Nothing
here prints; see the script's docstring for the protocol.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from _leads_decomposition import CONSTANTS as LEADS_CONSTANTS
from _leads_decomposition import LeadsField, env_names, env_start, leads_penalty, silent_env
from _leads_gray_scott import FAMILY as GRAY_SCOTT
from _leads_gray_scott import GrayScottGridField
from _leads_gray_scott import published_solver_error as gray_scott_solver_error
from _leads_navier_stokes import FAMILY as NAVIER_STOKES
from _leads_navier_stokes import coarse_solver_error
from _leads_output import ForecastErrors

from scimeta import problems
from scimeta.batch import TaskBatch
from scimeta.data import EnvironmentReader, generate
from scimeta.data import manifest as dataset_manifest
from scimeta.data.validate import validate
from scimeta.meta import MAML
from scimeta.nn import ConvVectorField, Forecaster, FourierVectorField, VectorFieldNet
from scimeta.train.forecast import (
    fine_tune,
    fine_tune_validated,
    forecast_error,
    forecast_mse,
)

REPO = Path(__file__).resolve().parents[1]
#: scipy's solve_ivp defaults, what the LEADS/CoDA generators used
RK45_DEFAULTS = dict(rtol=1e-3, atol=1e-6, method="RK45")


def build(name: str, out: Path, smoke: bool, preset: str = "accurate",
          smoke_train: int | None = None, workers: int = 1) -> dict[str, Path]:
    """Generate (or reuse) and validate every split of ``datasets/<name>`` under out.

    ``preset`` is the stores' ``solver_preset`` (``accurate`` data go to
    ``out/data/<name>``, others to ``out/data/<name>-<preset>``). With ``smoke`` the
    test splits keep 2 trajectories per environment and ``train`` keeps
    ``smoke_train`` tasks (when given). A reused store must carry ``preset``.
    ``workers`` processes solve each store (``generate`` shares even a small store
    among them); the stored data do not depend on it.
    """
    cfg = dataset_manifest.load_config(REPO / "datasets" / name)
    folder = out / "data" / (name if preset == "accurate" else f"{name}-{preset}")
    paths = {}
    for split, gc in dataset_manifest.split_configs(cfg).items():
        gc = dataclasses.replace(gc, solver_preset=preset)
        if smoke and split in ("test", "adapt-test"):
            gc = dataclasses.replace(gc, tasks=gc.tasks // 16)  # 2 per environment
        if smoke and split == "train" and smoke_train:
            gc = dataclasses.replace(gc, tasks=smoke_train)
        path = folder / f"{split}.h5"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            generate(gc, path, workers=workers)
        if store_preset(path) != preset:
            raise SystemExit(f"{path} holds solver_preset {store_preset(path)!r}, not "
                             f"{preset!r}; remove it")
        problems_found = validate(path)
        if problems_found:
            raise SystemExit(f"{path} failed validation: {problems_found}")
        paths[split] = path
    return paths


def store_preset(path: Path) -> str:
    """The ``solver_preset`` root attribute of a store (``accurate`` when absent)."""
    with h5py.File(path, "r") as f:
        raw = f.attrs.get("solver_preset", "accurate")
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def published_solver_error(reader: EnvironmentReader, family: str, preset: str) -> float:
    """MSE between RK45 at scipy's defaults and the accurate solver on the test sets.

    With accurate stores, RK45 is solved from each stored test trajectory's y0 and
    compared with it; with published stores, the family's accurate solver is.
    Gray-Scott (``gray_scott_leads``): the same on LEADS's grid model.
    """
    if family == GRAY_SCOTT:
        return gray_scott_solver_error(reader, preset)
    if family == NAVIER_STOKES:  # LEADS's solver is not RK45: its resolution instead
        return coarse_solver_error(reader)
    fam = problems.get(family)
    t = reader.time.double().numpy()
    other = {} if preset != "accurate" else RK45_DEFAULTS
    errs = []
    for e in range(len(reader)):
        traj = reader.trajectories(e, query_store=True).double().numpy()
        for y in traj:
            sol = fam.solve(reader.params[e], y[0], t, **other)
            errs.append(np.mean((sol - y) ** 2))
    return float(np.mean(errs))


class TrueField(torch.nn.Module):
    """The exact field of ``family``; ``p`` holds its parameters."""

    def __init__(self, family: str) -> None:
        super().__init__()
        self.family = problems.get(family)
        self.p = torch.nn.Parameter(torch.zeros(len(self.family.params)))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.family.rhs_torch(None, y, self.p)


def discretisation_floor(reader: EnvironmentReader, batch: TaskBatch, substeps: int,
                         family: str) -> tuple[float, int, int] | None:
    """Forecast MSE of the exact field under the model's RK4 steps (the model's floor):
    mean over the finite rollouts, the number that diverged, the number of rollouts;
    None for Navier-Stokes (no floor: see ``_leads_navier_stokes``)."""
    if family == NAVIER_STOKES:
        return None
    field = GrayScottGridField() if family == GRAY_SCOTT else TrueField(family)
    true = Forecaster(field, reader.time, substeps=substeps)
    p = {"field.p": torch.as_tensor(reader.params, dtype=reader.dtype)}
    mse = forecast_mse(true, p, batch.query_x, batch.query_y).numpy()
    ok = np.isfinite(mse)
    return (float(mse[ok].mean()) if ok.any() else float("nan"), int((~ok).sum()),
            int(mse.size))


class ContextField(torch.nn.Module):
    """``f(y, c)``: a vector field network with a learned context vector ``c`` as input.

    The CAVIA/CoDA-style baseline: the network (built with ``param_dim = context_dim``:
    extra inputs of a VectorFieldNet, extra constant channels of a ConvVectorField) is
    shared by the environments, each environment has its own ``c`` ``[context_dim]``;
    a new environment fits ``c`` only.
    """

    def __init__(self, net: torch.nn.Module, context_dim: int) -> None:
        super().__init__()
        self.net = net
        self.context = torch.nn.Parameter(torch.zeros(context_dim))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.net(y, self.context)


def make_field(reader: EnvironmentReader, size: dict, param_dim: int = 0) -> torch.nn.Module:
    """The vector field network of ``size``: an MLP on the flat state, with
    ``size["field"] == "conv"`` a periodic CNN on the ``size["grid"]`` field, with
    ``"fno"`` a Fourier neural operator (``size["fno"]``: modes, width, ...)."""
    if size.get("field", "mlp") == "fno":
        return FourierVectorField(size["channels"], tuple(size["grid"]), param_dim=param_dim,
                                  activation=size["activation"], scale=size["scale"],
                                  **size.get("fno", {}))
    if size.get("field", "mlp") == "conv":
        return ConvVectorField(size["channels"], tuple(size["grid"]), param_dim=param_dim,
                               hidden=size["hidden"], activation=size["activation"],
                               scale=size["scale"])
    return VectorFieldNet(reader.state_dim, param_dim=param_dim, hidden=size["hidden"],
                          activation=size["activation"])


def make_model(reader: EnvironmentReader, size: dict, seed: int,
               context_dim: int = 0, leads: bool = False) -> Forecaster:
    """A ``Forecaster`` over ``reader``'s grid, network initialised from ``seed``;
    ``leads``: LEADS's f + g (two networks of the size, f drawn first)."""
    torch.manual_seed(seed)
    if leads:
        field: torch.nn.Module = LeadsField(make_field(reader, size),
                                            make_field(reader, size))
    elif context_dim:
        field = ContextField(make_field(reader, size, context_dim), context_dim)
    else:
        field = make_field(reader, size)
    return Forecaster(field, reader.time, substeps=size["substeps"],
                      method=size.get("method", "rk4"))


def all_trajectories(reader: EnvironmentReader) -> tuple[torch.Tensor, torch.Tensor]:
    """Every training trajectory by environment: y0 ``[E, K, S]``, ``[E, K, T, S]``."""
    traj = torch.stack([reader.trajectories(e) for e in range(len(reader))])
    return traj[:, :, 0], traj


def train_maml(model: Forecaster, sample: Callable[[np.random.Generator], TaskBatch],
               steps: int, lr: float, inner_lr: float,
               inner_steps: int) -> tuple[MAML, dict[str, torch.Tensor], int]:
    """Second-order MAML; ``sample(rng)`` gives one meta-batch (a TaskBatch).

    Returns the learner, the trained init and the number of meta-steps skipped
    because the meta-loss was not finite.
    """
    maml = MAML(model, inner_lr=inner_lr, inner_steps=inner_steps)
    params = maml.init_params()
    opt = torch.optim.Adam(params.values(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    rng = np.random.default_rng(0)
    skipped = 0
    for _ in range(steps):
        loss = maml.meta_loss(params, sample(rng))
        opt.zero_grad()
        if torch.isfinite(loss):  # an inner step can blow a rollout up: skip, count
            loss.backward()
            opt.step()
            sched.step()
        else:
            skipped += 1
    return maml, {k: v.detach().clone() for k, v in params.items()}, skipped


def stats(a: np.ndarray) -> dict:
    """Over the finite entries of ``a`` ``[E, N]``: mean and std over trajectories, std
    of the per-environment means; ``diverged`` counts the non-finite ones (left out)."""
    ok = np.isfinite(a)
    env = [row[m].mean() for row, m in zip(a, ok, strict=True) if m.any()]
    nan = float("nan")
    return {"mean": float(a[ok].mean()) if ok.any() else nan,
            "std": float(a[ok].std()) if ok.any() else nan,
            "std_env": float(np.std(env)) if env else nan, "n_env": a.shape[0],
            "n": a.size, "diverged": int((~ok).sum())}


def fmt(d: dict) -> str:
    """``mean ± std`` of :func:`stats`, with the count of diverged rollouts."""
    div = f" ({d['diverged']} div.)" if d["diverged"] else ""
    return f"{d['mean']:.3g} ± {d['std']:.2g}{div}"


def _trainer(size: dict, y0: torch.Tensor, traj: torch.Tensor, log: dict, grid: str,
             augment: Callable[[torch.Tensor, torch.Tensor],
                               tuple[torch.Tensor, torch.Tensor]] | None = None,
             ) -> Callable[..., dict[str, torch.Tensor]]:
    """Training of the joint and context inits on every training trajectory, or with
    ``size["val"] = v`` on all but the last v per environment, keeping the iterate
    with the least validation MSE on those v (checked every ``size["every"]``
    updates; the kept update count goes to the log); ``size["schedule"]``: the rate
    schedule (constant or cosine); ``size["teacher_forcing"]``: LEADS's training
    rollouts ``(k, every)`` or None. ``augment(y0, traj)`` replaces the trajectories
    trained on by their images *after* the validation ones are split off (no image of
    a validation trajectory is trained on; validation scores the trajectories as
    stored)."""
    v = size.get("val", 0)
    val = (y0[:, -v:], traj[:, -v:]) if v else None
    if v:
        y0, traj = y0[:, :-v], traj[:, :-v]
    if augment is not None:
        y0, traj = augment(y0, traj)

    def fit(what: str, model: Forecaster, start: dict | None, steps: int, lr: float,
            **kw: Any) -> dict[str, torch.Tensor]:
        kw["schedule"] = size.get("schedule", "constant")
        kw["teacher_forcing"] = size.get("teacher_forcing")
        if not v:
            return fine_tune(model, start, y0, traj, steps, lr, **kw)[0]
        out = fine_tune_validated(model, start, y0, traj, *val, steps, lr,
                                  every=size.get("every", 100), **kw)
        log[f"{grid}/{what}_kept_step"] = out.best_step
        log[f"{grid}/{what}_val_mse"] = float(out.val_curve.mean(1).min())
        return out.phi
    return fit


#: what each init adapts to an environment
ADAPTED = {"random": "all", "joint": "all", "maml": "all", "context": "context",
           "leads": "g_e (f fixed)"}


def run_grid(name: str, sets: dict[str, EnvironmentReader], train: EnvironmentReader,
             maml_sample: Callable[[np.random.Generator], TaskBatch], size: dict,
             args: Any, log: dict, family: str,
             errors: dict[str, ForecastErrors] | None = None) -> list[dict]:
    """Train the inits on ``train``; adapt and score on each reader of ``sets``.

    ``errors``, if given, receives per test set (key ``"<grid>/<set>"``) the squared
    error of every test rollout at every time, before and after each row's
    adaptation (:class:`ForecastErrors`), in the order of the rows returned."""
    y0, traj = all_trajectories(train)
    augment = None  # images for the joint and context training sets only
    if size.get("augment") == "d4":
        from _leads_gray_scott import augment_d4

        augment = functools.partial(augment_d4, shape=tuple(size["grid"]),
                                    channels=size["channels"])
    elif size.get("augment") == "forcing":
        from _leads_navier_stokes import augment_forcing_symmetric

        augment = functools.partial(augment_forcing_symmetric, params=train.params,
                                    images=size["images"])
    plain = make_model(train, size, args.seed)
    names = [k for k, _ in plain.named_parameters()]
    inits: dict[str, tuple[Forecaster, dict, list[str] | None]] = {
        "random": (plain, {k: v.detach().clone() for k, v in plain.named_parameters()},
                   None)}
    t0 = time.perf_counter()
    mini = size.get("batch")  # trajectories per environment per update (None: all)
    fit = _trainer(size, y0, traj, log, name, augment)
    joint = fit("joint", plain, None, size["joint"], args.lr, names=[], shared=names,
                batch=mini)
    inits["joint"] = (plain, joint, None)
    log[f"{name}/joint_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    maml, theta, skipped = train_maml(make_model(train, size, args.seed), maml_sample,
                                      size["maml"], args.lr, args.inner_lr,
                                      args.inner_steps)
    log[f"{name}/maml_skipped_steps"] = skipped
    inits["maml"] = (plain, theta, None)
    log[f"{name}/maml_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ctx_model = make_model(train, size, args.seed, args.context_dim)
    start = {k: v.detach() for k, v in ctx_model.named_parameters()}
    start["field.context"] = 0.1 * torch.randn(len(train), args.context_dim)
    net = [k for k in start if k != "field.context"]
    ctx = fit("context", ctx_model, start, size["context"], args.lr,
              names=["field.context"], shared=net, batch=mini)
    log[f"{name}/context_s"] = time.perf_counter() - t0
    penalties = {}
    if size.get("leads"):
        t0 = time.perf_counter()
        leads_model = make_model(train, size, args.seed, leads=True)
        env = env_names(leads_model)
        start = env_start(leads_model, lambda: make_field(train, size), len(train),
                          args.seed)
        penalties["leads"] = leads_penalty(leads_model, *LEADS_CONSTANTS[family],
                                           channels=size.get("channels"))
        leads = fit("leads", leads_model, start, size["leads"], args.lr, names=env,
                    shared=[k for k in start if k not in env], batch=mini,
                    penalty=penalties["leads"])
        log[f"{name}/leads_s"] = time.perf_counter() - t0
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for set_name, reader in sets.items():
        batch = reader.batch(range(len(reader)))
        key = f"{name}/{set_name}/exact-field RK4"
        floor = discretisation_floor(reader, batch, size["substeps"], family)
        if floor is not None:
            log[f"{key} MSE"], log[f"{key} diverged"], log[f"{key} n"] = floor
        same = np.array_equal(reader.params, train.params)
        found = ForecastErrors(plain.t.numpy())
        mean_ctx = dict(ctx, **{"field.context": ctx["field.context"].mean(0)})
        inits["context"] = (ctx_model, ctx if same else mean_ctx, ["field.context"])
        if "leads" in penalties:  # a new environment: a fresh g (= 0) on the trained f
            inits["leads"] = (leads_model, leads if same else
                              silent_env(leads_model, leads, len(reader)), env)
        for init, (model, p, tuned) in inits.items():
            s = batch.support_x.shape[-1]
            qy, sy = (b.unflatten(-1, (-1, s)) for b in (batch.query_y, batch.support_y))
            before = forecast_error(model, p, batch.query_x, qy).numpy()
            rate = args.context_lr if init == "context" else args.tune_lr
            phi, curve = fine_tune(model, p, batch.support_x, sy, steps=size["tune"],
                                   lr=rate, names=tuned, penalty=penalties.get(init))
            after = forecast_error(model, phi, batch.query_x, qy).numpy()
            rows.append({"grid": name, "set": set_name, "init": init,
                         "adapted": ADAPTED[init], "none": stats(before.mean(-1)),
                         "tuned": stats(after.mean(-1)), "support": float(curve[-1].mean())})
            found.add(init, ADAPTED[init], before, after)
        adapted = maml.adapt_batch(theta, batch)  # MAML's own rule
        own = forecast_error(plain, {k: adapted[k] for k in theta}, batch.query_x,
                             batch.query_y).numpy()
        maml_row = next(r for r in reversed(rows) if r["init"] == "maml")
        rows.append({"grid": name, "set": set_name, "init": "maml",
                     "adapted": f"all, {args.inner_steps} SGD step(s) {args.inner_lr:g}",
                     "none": maml_row["none"], "tuned": stats(own.mean(-1)), "support": None})
        found.add("maml", rows[-1]["adapted"], found.none[found.init.index("maml")], own)
        if errors is not None:
            errors[f"{name}/{set_name}"] = found
    log[f"{name}/eval_s"] = time.perf_counter() - t0
    return rows
