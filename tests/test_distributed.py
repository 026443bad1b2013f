"""Meta-gradients averaged across ranks equal the single-process meta-gradient.

Two gloo processes each take part of a meta-batch (4 + 5 tasks, uneven on purpose),
compute their exact second-order meta-gradient and average it with
``allreduce_mean``; the result must equal the meta-gradient of the whole batch in one
process to 1e-12 relative (float64; only the summation order differs).
"""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from scimeta.errors import ConfigError
from scimeta.meta import MAML, TaskBatch
from scimeta.train.distributed import allreduce_mean, shard

DT = torch.float64


def setup():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 2)).to(DT)
    g = torch.Generator().manual_seed(1)
    b = TaskBatch(*(torch.randn(9, n, d, generator=g, dtype=DT)
                    for n, d in ((5, 1), (5, 2), (7, 1), (7, 2))))
    return MAML(model, 0.1, 2), b


def _worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        learner, b = setup()
        params = learner.init_params()
        part = shard(b, rank, world)
        _, grads = learner.meta_gradient(params, part)
        allreduce_mean(grads, part.num_tasks)
        if rank == 0:
            torch.save({k: v for k, v in grads.items() if v is not None}, out)
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.distributed
def test_two_ranks_equal_one_process(tmp_path):
    out = str(tmp_path / "grads.pt")
    mp.spawn(_worker, args=(2, free_port(), out), nprocs=2, join=True)
    learner, b = setup()
    _, want = learner.meta_gradient(learner.init_params(), b)
    got = torch.load(out, weights_only=True)
    for k, w in want.items():
        assert torch.allclose(got[k], w, rtol=1e-12, atol=1e-15), k


def test_shard_sizes_and_errors():
    _, b = setup()
    assert [shard(b, r, 2).num_tasks for r in range(2)] == [4, 5]
    assert sum(shard(b, r, 4).num_tasks for r in range(4)) == 9
    with pytest.raises(ConfigError, match="rank=2"):
        shard(b, 2, 2)
    with pytest.raises(ConfigError, match="cannot be split across 10 ranks"):
        shard(b, 0, 10)
