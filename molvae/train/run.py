"""A training run's fixed parts, shared by the loop that builds it and the epoch that uses it."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

from molvae.model import MolVAE
from molvae.train.config import TrainConfig
from molvae.train.state import LoopState


@dataclass
class TrainingRun:
    """What stays fixed for a whole training run: where, on which rank and device, with what
    (`molvae.train.loop` builds it, `molvae.train.epoch` trains with it)."""

    out: Path
    config: TrainConfig
    rank: int
    world: int
    device: torch.device
    created_group: bool  # the process group was created here, so it is destroyed here
    progress: bool
    model: MolVAE
    net: torch.nn.Module  # the model, or its DDP wrapper
    opt: torch.optim.Optimizer
    ids: Sequence[np.ndarray]
    train_props: np.ndarray | None
    vocab_tokens: list[str]
    base_meta: dict[str, Any]
    on_step: Callable[[LoopState], None] | None
    sched: torch.optim.lr_scheduler.LambdaLR | None = None
    sampler: Sampler | None = None  # this rank's batches, epoch by epoch (`set_epoch`)
    steps_per_epoch: int = 0
    total_steps: int = 0
    last_save: float = field(default_factory=time.monotonic)  # when last.pt was last written

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def metrics_path(self) -> Path:
        return self.out / "metrics.csv"
