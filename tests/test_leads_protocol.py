"""bench/leads_protocol.py --smoke runs the LEADS/CoDA protocol end to end (a pipeline
check at tiny sizes, not the numbers; ~10 s on one core)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_smoke_runs_end_to_end(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "leads_protocol.py"),
                          "--out", str(tmp_path), "--smoke"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "| leads | in-domain | context |" in out.stdout
    res = json.loads((tmp_path / "results.json").read_text())
    cells = {(r["grid"], r["set"], r["init"], r["adapted"]) for r in res["rows"]}
    for grid, sets in (("leads", ("in-domain",)), ("coda", ("in-domain", "new env"))):
        for s in sets:
            for init in ("random", "joint", "maml"):
                assert (grid, s, init, "all") in cells
            assert (grid, s, "context", "context") in cells
    for r in res["rows"]:
        assert r["tuned"]["n"] == 2 * r["tuned"]["n_env"]        # 2 test trajectories/env
        if r["adapted"] in ("all", "context"):  # Adam fine-tuning; MAML's own SGD step
            assert math.isfinite(r["tuned"]["mean"])              # may diverge at this size
    floor = res["log"]["published_solver_mse"]
    assert set(floor) == {"leads/test", "coda/in-domain", "coda/new env"}
    assert all(0 < v < 1e-3 for v in floor.values())
    assert (tmp_path / "table.md").read_text().startswith("Lotka-Volterra forecasting")
