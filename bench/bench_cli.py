"""Start-up time of the ``scimeta`` command line, as whole processes.

    python bench/bench_cli.py [--runs 7]

Times ``scimeta --help``, ``scimeta problems``, ``scimeta info`` and ``scimeta
validate`` on a small store (generated first, not timed) against two baselines
measured in the same run: ``python -c pass`` (interpreter start-up) and ``python -c
"import torch"`` (what every command used to pay). Prints min and median wall time
over ``--runs`` runs and the ratios of the medians to both baselines.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _scimeta() -> list[str]:
    script = Path(sys.executable).with_name("scimeta")
    return [str(script)] if script.exists() else [sys.executable, "-m", "scimeta"]


def _wall(cmd: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7, help="runs per command (default: 7)")
    args = ap.parse_args()
    cli = _scimeta()
    with tempfile.TemporaryDirectory() as tmp:
        store = str(Path(tmp) / "small.h5")
        subprocess.run([*cli, "-q", "generate", "oscillator", "--regime", "train", "--tasks",
                        "4", "--support", "4", "--query", "8", "--out", store], check=True,
                       stdout=subprocess.DEVNULL)
        cases = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import torch'": [sys.executable, "-c", "import torch"],
            "scimeta --help": [*cli, "--help"],
            "scimeta problems": [*cli, "problems"],
            "scimeta info small.h5": [*cli, "info", store],
            "scimeta validate small.h5": [*cli, "validate", store],
        }
        _wall(cases["python -c pass"], 1)  # warm the file cache
        results = {name: _wall(cmd, args.runs) for name, cmd in cases.items()}
    base = statistics.median(results["python -c pass"])
    torch_base = statistics.median(results["python -c 'import torch'"])
    print(f"{'command':<28} {'min s':>7} {'median s':>9} {'x python':>9} {'x torch':>8}")
    for name, times in results.items():
        med = statistics.median(times)
        print(f"{name:<28} {min(times):7.3f} {med:9.3f} {med / base:9.1f} "
              f"{med / torch_base:8.2f}")


if __name__ == "__main__":
    main()
