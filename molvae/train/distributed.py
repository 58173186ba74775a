"""Multi-process training under ``torchrun``: process group, per-rank batches, reductions.

The trainer calls these; with one process (no ``WORLD_SIZE``) they are no-ops.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from molvae.data.batching import BucketBatchSampler


class ShardedBatchSampler(Sampler[list[int]]):
    """Rank ``rank``'s share of a :class:`BucketBatchSampler`'s batches: every ``world``-th one.

    All ranks compute the same epoch order (same seed and epoch), so shares are disjoint; each
    rank gets ``len(inner) // world`` batches, so no rank waits in an all-reduce the others skip.
    """

    def __init__(self, inner: BucketBatchSampler, rank: int, world: int):
        self.inner, self.rank, self.world = inner, rank, world

    def set_epoch(self, epoch: int) -> None:
        self.inner.set_epoch(epoch)

    def __iter__(self):
        return iter(self.inner.batches()[self.rank :: self.world][: len(self)])

    def __len__(self) -> int:
        return len(self.inner) // self.world


def init_distributed(device: torch.device) -> tuple[int, int, torch.device, bool]:
    """(rank, world size, this rank's device, whether the process group was created here).

    Uses an existing process group, else creates one when ``WORLD_SIZE`` > 1 (set by torchrun):
    NCCL on CUDA (one GPU per ``LOCAL_RANK``), gloo on the CPU.
    """
    created = False
    if not (dist.is_available() and dist.is_initialized()):
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return 0, 1, device, False
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        created = True
    rank, world = dist.get_rank(), dist.get_world_size()
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
        torch.cuda.set_device(device)
    return rank, world, device, created


def all_finite(loss: torch.Tensor, world: int) -> bool:
    """Whether the loss is finite on every rank (all ranks must skip a step together)."""
    finite = torch.isfinite(loss.detach()).to(torch.float32).reshape(1)
    if world > 1:
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    return bool(finite.item())


def sum_over_ranks(
    sums: dict[str, float], n_mol: int, device: torch.device
) -> tuple[dict[str, float], int]:
    """Epoch loss sums and molecule counts added over all ranks."""
    t = torch.tensor([*sums.values(), float(n_mol)], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    vals = t.tolist()
    return dict(zip(sums, vals[:-1], strict=True)), int(vals[-1])
