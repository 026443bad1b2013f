"""A short description of the machine a run trained on, for run.json and reports."""

from __future__ import annotations

import os
import platform
from typing import Any

import torch


def describe_machine(device: torch.device | None = None) -> dict[str, Any]:
    """JSON-ready facts that decide wall times: OS and CPU architecture, logical CPUs
    (and those this process may use), torch threads, versions, and the GPU's name when
    ``device`` is a CUDA device. No host name or user name is recorded."""
    usable: int | None
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    out: dict[str, Any] = {
        "platform": f"{platform.system()} {platform.machine()}",
        "processor": _cpu_model(),
        "cpus": os.cpu_count(), "cpus_usable": usable,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(), "torch": torch.__version__,
    }
    if device is not None and device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
        out["cuda"] = torch.version.cuda
    return out


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
