"""Time and peak memory of Laplace posteriors on the quick-start surrogate.

CoordinateMLP 1 -> 2, hidden (64, 64), tanh (P = 4482 parameters), float64; tasks of
K = 10 support and Q = 100 query points. For each structure: fit (curvature,
factorisation, log-evidence check; for ``hessian`` the targets are f(x; θ), so that θ
is a mode) and predict (GLM mean and variance at the query
points), for one task and for ``--tasks`` tasks looped (``full``/``hessian`` at 100
tasks: extrapolated from one task unless ``--all``), plus batched over the tasks:
``kron`` end to end (:func:`scimeta.bayes.fit_kron_batch`), the others the vmap-batched
curvature alone. Each cell runs in a fresh process; memory is its peak resident size above the
size after setup (CPU) or ``torch.cuda.max_memory_allocated`` (GPU).

Optional cross-check with laplace-torch (when importable, e.g. PYTHONPATH with a
``pip install --target`` copy): predictive variance of ``FullLaplace`` (GGN) on the
equivalent ``nn.Sequential`` against ``structure="full"``, and the time of its
``KronLaplace`` looped over tasks against ours looped and batched end to end
(:func:`scimeta.bayes.fit_kron_batch`: K-FAC terms, factorisation, log Z, optionally
the evidence fit of σ_c and every τ_t, predictive at the query points), best of 3 in
the same process, with ``--profile`` the top operators of the batched path.

    OMP_NUM_THREADS=1 python bench/bench_bayes.py [--tasks 100] [--device cpu]
    OMP_NUM_THREADS=1 PYTHONPATH=/tmp/pipt python bench/bench_bayes.py --cross-check-only \\
        --profile

laplace-torch 0.3 and what it imports, outside the project's environment:
``pip install --target /tmp/pipt --no-deps laplace-torch torchmetrics lightning-utilities
curvlinops-for-pytorch backpack-for-pytorch opt-einsum asdfghjkl==0.1a4 einops unfoldNd
einconv linear_operator``.
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
    if batched and structure == "kron":  # end to end: fit, log Z, predictive
        from scimeta.bayes import fit_kron_batch

        params = {k: v.expand(n_tasks, *v.shape) for k, v in theta.items()}
        post = fit_kron_batch(model, params, x[:, :10], y[:, :10], prior_mean=theta,
                              prior_precision=1.0, noise_std=[0.1, 0.1])
        post.log_marginal_likelihood()
        fit = time.perf_counter() - t0
        post.predict(x[:, 10:])
        pred = time.perf_counter() - t0 - fit
    elif batched:
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


def _batched_kron(net, theta, phi, x, y, optimize: bool):
    """End to end over all tasks at once: K-FAC terms, factorisation, log Z, (evidence
    fit of σ_c and every τ_t,) predictive at the query points."""
    from scimeta.bayes import fit_kron_batch

    post = fit_kron_batch(net, phi, x[:, :10], y[:, :10], prior_mean=theta,
                          prior_precision=1.0, noise_std=[0.1, 0.1], optimize=optimize)
    post.log_marginal_likelihood()
    return post.predict(x[:, 10:])


def cross_check(n_tasks: int, repeats: int = 3, profile: bool = False) -> str:
    """laplace-torch FullLaplace variance vs ours; KronLaplace looped over tasks vs ours
    looped and batched (best of ``repeats``, interleaved, same process)."""
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
    g = torch.Generator().manual_seed(3)  # adapted φ_t ≠ θ, so that the evidence fit is posed
    phi = {k: v + 0.01 * torch.randn(n_tasks, *v.shape, generator=g, dtype=v.dtype)
           for k, v in theta.items()}

    def loader(t):
        return DataLoader(TensorDataset(x[t, :10], y[t, :10]), batch_size=10)

    la = FullLaplace(net, "regression", sigma_noise=0.1, prior_precision=1.0)
    la.fit(loader(0))
    _, f_var = la(x[0, 10:], pred_type="glm")
    ours = fit_laplace(net, theta, x[0, :10], y[0, :10], structure="full",
                       prior_precision=1.0, noise_std=0.1).predict(x[0, 10:])
    ref = torch.diagonal(f_var, dim1=-2, dim2=-1)
    rel = float(((ours.var_f - ref).abs() / ref.abs()).max())

    def theirs():
        for t in range(n_tasks):
            lk = KronLaplace(net, "regression", sigma_noise=0.1, prior_precision=1.0)
            lk.fit(loader(t))
            lk(x[t, 10:], pred_type="glm")

    def loop():
        for t in range(n_tasks):
            fit_laplace(net, {k: v[t] for k, v in phi.items()}, x[t, :10], y[t, :10],
                        prior_mean=theta, structure="kron", prior_precision=1.0,
                        noise_std=[0.1, 0.1]).predict(x[t, 10:])

    paths = {"laplace-torch KronLaplace, loop over tasks (fit + GLM predictive)": theirs,
             "scimeta kron, loop over tasks (fit_laplace + predict)": loop,
             "scimeta kron, batched (fit_kron_batch: fit + log Z + predict)":
                 lambda: _batched_kron(net, theta, phi, x, y, False),
             "scimeta kron, batched + evidence fit of σ_c and every τ_t":
                 lambda: _batched_kron(net, theta, phi, x, y, True)}
    _batched_kron(net, theta, {k: v[:2] for k, v in phi.items()}, x[:2], y[:2], True)
    best = dict.fromkeys(paths, float("inf"))
    for _ in range(repeats):
        for name, fn in paths.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    ref_t = best[next(iter(paths))]
    lines = [f"laplace-torch cross-check: FullLaplace GLM variance vs structure='full': max "
             f"relative difference {rel:.2e}", "",
             f"| K-FAC, {n_tasks} tasks, end to end (best of {repeats}) | s | "
             "laplace-torch time / this |", "|---|---|---|"]
    lines += [f"| {n} | {t:.3f} | {ref_t / t:.1f}x |" for n, t in best.items()]
    if profile:
        lines += ["", _profile(net, theta, phi, x, y)]
    return "\n".join(lines)


def _profile(net, theta, phi, x, y, rows: int = 12) -> str:
    """Seconds per stage of the batched path with the evidence fit, then its top
    operators (self CPU time, torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    from scimeta.bayes import fit_kron_batch

    stages = {}
    t0 = time.perf_counter()
    post = fit_kron_batch(net, phi, x[:, :10], y[:, :10], prior_mean=theta,
                          prior_precision=1.0, noise_std=[0.1, 0.1])
    stages["K-FAC terms at the support points + eigendecompositions of A"] = time.perf_counter()
    post = post.fit_hyper()
    stages["evidence fit (MacKay fixed point, all tasks at once)"] = time.perf_counter()
    post.log_marginal_likelihood()
    stages["log Z (incl. eigendecomposition of G at the fitted σ)"] = time.perf_counter()
    post.predict(x[:, 10:])
    stages["predictive (Jacobians at the query points + variance)"] = time.perf_counter()
    lines = ["| stage | s |", "|---|---|"]
    for name, t in stages.items():
        lines.append(f"| {name} | {t - t0:.3f} |")
        t0 = t
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        _batched_kron(net, theta, phi, x, y, True)
    return "\n".join(lines) + "\n\n" + prof.key_averages(group_by_input_shape=True).table(
        sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=24,
        max_shapes_column_width=44)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=100, help="tasks of the many-task cells")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--all", action="store_true",
                    help="also time full and hessian over --tasks (slow)")
    ap.add_argument("--structures", default=",".join(STRUCTURES), help="comma-separated")
    ap.add_argument("--profile", action="store_true",
                    help="print the top operators of the batched K-FAC path")
    ap.add_argument("--cross-check-only", action="store_true",
                    help="skip the per-structure table")
    args = ap.parse_args()
    if args.cross_check_only:
        print(cross_check(args.tasks, profile=args.profile))
        return
    print(f"| structure | fit 1 task (s) | predict 1 task (s) | peak MB 1 task | fit+predict "
          f"{args.tasks} tasks looped (s) | peak MB | batched {args.tasks} tasks (s): kron fit + "
          "predict end to end, others the curvature | peak MB |")
    print("|" + "---|" * 8)
    for s in args.structures.split(","):
        one = measure(s, 1, args.device)
        if s in ("full", "hessian") and not args.all:
            est = (one["fit"] + one["predict"]) * args.tasks
            many = f"~{est:.1f} (1 task x {args.tasks})"
            mem, bat, bmem = "-", "-", "-"
        else:
            m = measure(s, args.tasks, args.device)
            b = measure(s, args.tasks, args.device, batched=True)
            many = f"{m['fit'] + m['predict']:.2f}"
            mem, bat, bmem = f"{m['mem']:.0f}", f"{b['fit'] + b['predict']:.2f}", f"{b['mem']:.0f}"
        print(f"| {s} | {one['fit']:.3f} | {one['predict']:.3f} | {one['mem']:.0f} | {many} | "
              f"{mem} | {bat} | {bmem} |", flush=True)
    print(cross_check(args.tasks, profile=args.profile))


if __name__ == "__main__":
    main()
