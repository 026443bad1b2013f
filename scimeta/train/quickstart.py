"""``scimeta quickstart``: the main job end to end on an embedded default.

Generates a small dataset of the unforced ``oscillator``: the training regime, the
interpolation regime, and the extrapolation band omega0 in [2.5, 3.5) cut in two — a
validation part [2.5, 3.0) and a test part [3.0, 3.5) (``split_validation``). It
meta-trains second-order MAML plus the first-order and joint baselines (the
validation part is monitored during training), chooses each init's SGD and Adam
rates on the validation part, evaluates every init on both test regimes at those
rates and writes the tables, xarray Datasets and plots — in a few minutes on a
2-core CPU. Nothing is tuned on a test regime.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from ..data import GenerationConfig, generate
from ..errors import ConfigError
from ..runtime.atomic import write_json, write_text
from ..runtime.config import from_dict
from .config import TrainConfig
from .evaluate import evaluate, format_table, summary_table
from .loop import train

log = logging.getLogger(__name__)

#: store name -> (regime, omega0 bounds or None, tasks); the unforced oscillator (F = 0)
SPLITS = {
    "unforced-train": ("unforced-train", None, 400),
    "unforced-test-interpolate": ("unforced-test-interpolate", None, 50),
    "unforced-validation": ("unforced-test-extrapolate", (2.5, 3.0), 50),
    "unforced-test-extrapolate": ("unforced-test-extrapolate", (3.0, 3.5), 50),
}
#: the test-time budget of the summary tables (rates are chosen at this budget)
BUDGET = 10

DEFAULT = {
    "data": {"train": "data/unforced-train.h5",
             "validation": {"validation": "data/unforced-validation.h5"}},
    "model": {"hidden": [64, 64], "activation": "tanh", "normalize": "none"},
    "meta": {"algorithm": "maml", "inner_lr": 0.1, "inner_steps": 5, "meta_batch": 25,
             "baselines": ["fomaml", "joint"]},
    "optim": {"lr": 1e-3, "iterations": 4000},
    "run": {"seed": 0, "checkpoint_every": 100, "validate_every": 100, "log_every": 50},
}


def quickstart(out: str | os.PathLike = "scimeta-quickstart", *, iterations: int | None = None,
               workers: int = 1, progress: bool | None = None) -> dict:
    """Run the quick-start into ``out``; returns the summary tables by regime.

    Re-running continues where a previous run stopped (every step resumes).
    """
    out = Path(out)
    try:
        (out / "data").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"out={str(out)!r}: cannot create the output folder there "
                          f"({exc.strerror or exc}); choose another --out") from None
    for k, (name, (regime, omega0, n)) in enumerate(SPLITS.items()):
        bounds = () if omega0 is None else (("omega0", *omega0),)
        generate(GenerationConfig("oscillator", regime, tasks=n, seed=k, support=10, query=100,
                                  bounds=bounds),
                 out / "data" / f"{name}.h5", workers=workers, resume=True)
    raw = json.loads(json.dumps(DEFAULT))
    raw["data"]["train"] = str(out / raw["data"]["train"])
    raw["data"]["validation"] = {k: str(out / v) for k, v in raw["data"]["validation"].items()}
    if iterations is not None:
        raw["optim"]["iterations"] = iterations
    cfg = from_dict(TrainConfig, raw)
    run = out / "run"
    result = train(cfg, run, resume=True, progress=progress)
    if not result.completed:
        return {}
    tables = {}
    for split in ("test-interpolate", "test-extrapolate"):
        ds = evaluate(run, out / "data" / f"unforced-{split}.h5", label=split,
                      validation=out / "data" / "unforced-validation.h5",
                      budgets=(0, 1, 5, BUDGET), select_budget=BUDGET)
        tables[split] = summary_table(ds)
    text = "\n\n".join(
        format_table(rows, f"oscillator / {split} (query MSE after {BUDGET} steps; rates "
                           "chosen on the validation store)")
        for split, rows in tables.items())
    write_text(out / "summary.txt", text + "\n")
    write_json(out / "summary.json", tables)
    return tables
