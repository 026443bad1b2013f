"""GPU checks (``python -m pytest -m gpu``): the same numbers on CUDA as on the CPU.

Skipped without a CUDA device; run by ``bench/gpu_check.sh`` on a GPU machine.
"""

from __future__ import annotations

import pytest
import torch

from scimeta.meta import MAML, PhysicsLoss, TaskBatch
from scimeta.nn import CoordinateMLP

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _batch(device, dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    parts = [torch.rand(8, 10, 1, generator=g) * 10, torch.randn(8, 10, 2, generator=g),
             torch.rand(8, 20, 1, generator=g) * 10, torch.randn(8, 20, 2, generator=g),
             torch.rand(8, 16, 1, generator=g) * 10,
             torch.tensor([[1.0, 0.1, 0.0, 1.0]]).repeat(8, 1)]
    return TaskBatch(*(p.to(device=device, dtype=dtype) for p in parts))


@pytest.mark.parametrize("physics", [False, True])
@pytest.mark.parametrize("fast", [None, False])
def test_meta_gradient_on_cuda_equals_cpu(physics, fast):
    if physics and fast is None:
        fast = False  # the physics loss always takes the generic path
    torch.manual_seed(0)
    model = CoordinateMLP(1, 2, (32, 32)).double()
    phys = PhysicsLoss("oscillator", weight=0.01) if physics else None
    grads = {}
    for device in ("cpu", "cuda"):
        maml = MAML(model.to(device), inner_lr=0.05, inner_steps=3, physics=phys, fast=fast)
        params = {k: v.detach().to(device).requires_grad_(True)
                  for k, v in maml.init_params().items()}
        loss = maml.meta_loss(params, _batch(device))
        grads[device] = [g.cpu() for g in torch.autograd.grad(loss, list(params.values()))]
    for a, b in zip(grads["cpu"], grads["cuda"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_trainer_runs_on_cuda(tmp_path):
    from scimeta.data import GenerationConfig, generate
    from scimeta.runtime.config import from_dict
    from scimeta.train import TrainConfig, train

    generate(GenerationConfig("oscillator", "unforced-train", tasks=30, support=5, query=10),
             tmp_path / "train.h5")
    cfg = from_dict(TrainConfig, {
        "data": {"train": str(tmp_path / "train.h5")},
        "model": {"hidden": [16]},
        "meta": {"meta_batch": 8, "baselines": []},
        "optim": {"iterations": 5},
        "run": {"device": "cuda"},
    })
    assert train(cfg, tmp_path / "run").completed
