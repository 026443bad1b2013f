"""Every file shipped in problems/suites/ parses: suites plan and their run configs pass
TrainConfig's checks; a plain run config (a ``[data]`` table) loads as one."""

from __future__ import annotations

from pathlib import Path

import pytest

from scimeta.runtime.config import from_dict, load_toml
from scimeta.train import TrainConfig
from scimeta.train.suite_spec import load_suite, plan, run_config

SUITES = sorted((Path(__file__).resolve().parents[1] / "problems" / "suites").glob("*.toml"))


def test_there_are_suites():
    assert len(SUITES) >= 5


@pytest.mark.parametrize("path", SUITES, ids=lambda p: p.stem)
def test_a_shipped_suite_plans(path, tmp_path):
    text = path.read_text()
    if "data" in load_toml(path):  # a run config: `scimeta train FILE`
        cfg = from_dict(TrainConfig, load_toml(path))
        assert cfg.optim.iterations >= 1 and "scimeta train" in text
        return
    spec = load_suite(path)
    steps = plan(spec, tmp_path, path.parent)
    names = {f"{s.kind}:{s.name}" for s in steps}
    for s in steps:  # every dependency is a step of the same suite
        assert set(s.needs) <= names, (s, s.needs)
    for name in spec.runs:  # each run config passes TrainConfig's checks
        cfg, _, _ = run_config(name, spec, tmp_path, path.parent)
        assert cfg.optim.iterations >= 1
    assert "scimeta suite" in text  # the header names the command that runs it
