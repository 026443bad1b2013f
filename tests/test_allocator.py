"""``scimeta.runtime.allocator``: after tuning, a freed large buffer is reused without
page faults; ``SCIMETA_MALLOC=system`` and a bad value leave glibc's default, under
which every fresh large buffer faults its pages in again. Each case runs in its own
process, so the test process's allocator stays as it is."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="mallopt is glibc's (Linux)")

CODE = """
import json, resource
import numpy as np
from scimeta.runtime.allocator import tune_allocator

tuned = tune_allocator()
a = np.ones(16 * 2**20)  # 128 MB, touched
del a
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    a = np.ones(16 * 2**20)
    del a
after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
print(json.dumps({"tuned": tuned, "faults": (after - before) / 4}))
"""


def _run(env_value: str | None) -> tuple[dict, str]:
    env = {k: v for k, v in os.environ.items() if k != "SCIMETA_MALLOC"}
    if env_value is not None:
        env["SCIMETA_MALLOC"] = env_value
    out = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


def test_tuned_reuses_freed_buffers_and_the_default_faults_again():
    tuned, _ = _run(None)
    if not tuned["tuned"]:
        pytest.skip("not glibc: nothing to tune")
    system, _ = _run("system")
    assert not system["tuned"]
    # 128 MB is at least 64 pages even as 2 MB huge pages; reused heap memory: none
    assert system["faults"] >= 64
    assert tuned["faults"] <= 8


def test_a_bad_choice_is_named_and_leaves_the_default():
    got, err = _run("fast")
    assert not got["tuned"]
    assert "SCIMETA_MALLOC='fast' is not a choice (heap, system)" in err
