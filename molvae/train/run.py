"""A training run's fixed parts, shared by the loop that builds it and the epoch that uses it."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

from molvae.io import write_text
from molvae.model import MolVAE
from molvae.train.config import TrainConfig
from molvae.train.state import LoopState

log = logging.getLogger(__name__)


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


def keep_recorded_objective(run: TrainingRun, st: LoopState) -> None:
    """A resumed run minimizes what it minimized before: the loss settings its ``last.pt``
    records replace the requested ones (with a warning when they differ, and ``config.json``
    rewritten), so a changed default or a mistyped flag cannot change a run halfway. A
    ``last.pt`` from before the record goes on with the requested settings, said in a warning."""
    config = run.config
    if st.fresh:
        st.objective = config.objective_state()
        return
    if st.objective is None:
        log.warning("%s does not record its loss settings (written before molvae recorded them); "
                    "going on with the requested ones: %s",
                    run.out / "last.pt", config.objective_state())  # fmt: skip
        st.objective = config.objective_state()
        return
    if st.objective == config.objective_state():
        return
    changed = {k: (v, getattr(config, k, None)) for k, v in st.objective.items()
               if getattr(config, k, None) != v}  # fmt: skip
    log.warning("resuming with the loss settings of %s (recorded, requested): %s",
                run.out / "last.pt", changed)  # fmt: skip
    known = {f.name for f in fields(config)}
    run.config = replace(config, **{k: v for k, v in st.objective.items() if k in known})
    if run.main:
        settings = json.loads((run.out / "config.json").read_text())
        settings["train"] = asdict(run.config)
        write_text(run.out / "config.json", json.dumps(settings, indent=2))
