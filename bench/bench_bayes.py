"""Time and peak memory of Laplace posteriors on the quick-start surrogate.

CoordinateMLP 1 -> 2, hidden (64, 64), tanh (P = 4482 parameters), float64; tasks of
K = 10 support and Q = 100 query points. For each structure: fit (curvature,
factorisation, log-evidence check; for ``hessian`` the targets are f(x; θ), so that θ
is a mode) and predict (GLM mean and variance at the query
points), for one task and for ``--tasks`` tasks looped (``full``/``hessian`` at 100
tasks: extrapolated from one task unless ``--all``), plus the vmap-batched curvature
alone. Each cell runs in a fresh process; memory is its peak resident size above the
size after setup (CPU) or ``torch.cuda.max_memory_allocated`` (GPU).

Optional cross-check with laplace-torch (when importable, e.g. PYTHONPATH with a
``pip install --target`` copy): predictive variance of ``FullLaplace`` (GGN) on the
equivalent ``nn.Sequential`` against ``structure="full"``, and the time of its
``KronLaplace`` looped over tasks against ours.

    OMP_NUM_THREADS=1 python bench/bench_bayes.py [--tasks 100] [--device cpu]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time

STRUCTURES = ("full", "diag", "kron", "last-layer", "hessian")


def _setup(n_tasks: int, device: str):
    import torch

    from scimeta.nn import CoordinateMLP

    torch.manual_seed(0)
    model = CoordinateMLP(1, 2, hidden=(64, 64), activation="tanh").double().to(device)
    theta = {k: v.detach() for k, v in model.named_parameters()}
    g = torch.Generator().manual_seed(1)
    x = 10 * torch.rand(n_tasks, 110, 1, generator=g, dtype=torch.float64)
    y = torch.cat([torch.sin(x), torch.cos(x)], -1) + 0.05 * torch.randn(
        n_tasks, 110, 2, generator=g, dtype=torch.float64)
    return model, theta, x.to(device), y.to(device)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cell(structure: str, n_tasks: int, device: str, batched: bool) -> dict:
    import torch

    from scimeta.bayes import curvature, fit_laplace
    from scimeta.nn import CoordinateMLP

    model, theta, x, y = _setup(n_tasks, device)
    jitter = 0.0
    if structure == "hessian":  # targets = f(x; θ): θ is a mode and H is PSD there
        with torch.no_grad():
            y = torch.func.vmap(model)(x)
    small = CoordinateMLP(1, 2, hidden=(4, 4), activation="tanh").double().to(device)
    p_small = {k: v.detach() for k, v in small.named_parameters()}
    with torch.no_grad():
        y_small = small(x[0, :10])  # its own outputs: a mode, for every structure
    fit_laplace(small, p_small, x[0, :10], y_small, structure=structure,
                noise_std=[0.1, 0.1]).predict(x[0, 10:])  # first-call overheads, tiny model
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    base = _rss_mb()
    t0 = time.perf_counter()
    if batched:
        params = {k: v.expand(n_tasks, *v.shape) for k, v in theta.items()}
        curvature(model, params, x[:, :10], y[:, :10], structure=structure, batched=True,
                  per_channel=True)
        fit = time.perf_counter() - t0
        pred = 0.0
    else:
        fit = pred = 0.0
        for t in range(n_tasks):
            t1 = time.perf_counter()
            post = fit_laplace(model, theta, x[t, :10], y[t, :10], prior_mean=theta,
                               structure=structure, prior_precision=1.0,
                               noise_std=[0.1, 0.1], jitter=jitter)
            t2 = time.perf_counter()
            post.predict(x[t, 10:])
            fit += t2 - t1
            pred += time.perf_counter() - t2
    mem = (torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda")
           else _rss_mb() - base)
    return {"fit": fit, "predict": pred, "mem": mem}


def _run(args: tuple) -> dict:
    return _cell(*args)


def measure(structure: str, n_tasks: int, device: str, batched: bool = False) -> dict:
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(_run, ((structure, n_tasks, device, batched),))


def cross_check(n_tasks: int) -> str:
    """laplace-torch FullLaplace variance vs ours, and KronLaplace time vs ours."""
    try:
        from laplace import FullLaplace, KronLaplace
    except ImportError:
        return "laplace-torch not importable: cross-check skipped"
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from scimeta.bayes import fit_laplace

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(1, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(),
                        nn.Linear(64, 2)).double()
    theta = {k: v.detach().clone() for k, v in net.named_parameters()}
    _, _, x, y = _setup(n_tasks, "cpu")

    def loader(t):
        return DataLoader(TensorDataset(x[t, :10], y[t, :10]), batch_size=10)

    la = FullLaplace(net, "regression", sigma_noise=0.1, prior_precision=1.0)
    la.fit(loader(0))
    _, f_var = la(x[0, 10:], pred_type="glm")
    ours = fit_laplace(net, theta, x[0, :10], y[0, :10], structure="full",
                       prior_precision=1.0, noise_std=0.1).predict(x[0, 10:])
    ref = torch.diagonal(f_var, dim1=-2, dim2=-1)
    rel = float(((ours.var_f - ref).abs() / ref.abs()).max())
    t0 = time.perf_counter()
    for t in range(n_tasks):
        lk = KronLaplace(net, "regression", sigma_noise=0.1, prior_precision=1.0)
        lk.fit(loader(t))
        lk(x[t, 10:], pred_type="glm")
    t_theirs = time.perf_counter() - t0
    t0 = time.perf_counter()
    for t in range(n_tasks):
        fit_laplace(net, theta, x[t, :10], y[t, :10], structure="kron", prior_precision=1.0,
                    noise_std=0.1).predict(x[t, 10:])
    t_ours = time.perf_counter() - t0
    return (f"laplace-torch cross-check: FullLaplace GLM variance vs structure='full': max "
            f"relative difference {rel:.2e}; kron fit+predict over {n_tasks} tasks (loop): "
            f"laplace-torch {t_theirs:.2f} s, scimeta {t_ours:.2f} s (ratio "
            f"{t_theirs / t_ours:.1f}x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=100, help="tasks of the many-task cells")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--all", action="store_true",
                    help="also time full and hessian over --tasks (slow)")
    ap.add_argument("--structures", default=",".join(STRUCTURES), help="comma-separated")
    args = ap.parse_args()
    print(f"| structure | fit 1 task (s) | predict 1 task (s) | peak MB 1 task | fit+predict "
          f"{args.tasks} tasks (s) | peak MB | batched curvature {args.tasks} tasks (s) |")
    print("|" + "---|" * 7)
    for s in args.structures.split(","):
        one = measure(s, 1, args.device)
        if s in ("full", "hessian") and not args.all:
            est = (one["fit"] + one["predict"]) * args.tasks
            many = f"~{est:.1f} (1 task x {args.tasks})"
            mem, bat = "-", "-"
        else:
            m = measure(s, args.tasks, args.device)
            b = measure(s, args.tasks, args.device, batched=True)
            many = f"{m['fit'] + m['predict']:.2f}"
            mem, bat = f"{m['mem']:.0f}", f"{b['fit']:.2f}"
        print(f"| {s} | {one['fit']:.3f} | {one['predict']:.3f} | {one['mem']:.0f} | {many} | "
              f"{mem} | {bat} |", flush=True)
    print(cross_check(args.tasks))


if __name__ == "__main__":
    main()
