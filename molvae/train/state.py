"""What a run carries from step to step and across a resume: the loop's counters, its position
inside the epoch, the RNG states, and the ``metrics.csv`` rows.

A resumed run continues exactly where ``last.pt`` was written, at an epoch's end or inside an
epoch: same weights, optimizer and scheduler states, counters, partial epoch sums, batch
position and RNG states, and one metrics row per finished epoch.
"""

from __future__ import annotations

import csv
import io
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from molvae.io import write_bytes, write_csv
from molvae.model.checkpoint import load_checkpoint
from molvae.train.config import LEGACY_BATCHING

SUMS = ("loss", "recon", "kl", "prop")


def _zero_sums() -> dict[str, float]:
    return dict.fromkeys(SUMS, 0.0)


@dataclass
class LoopState:
    """Where the training loop stands; all but ``mol_per_s`` are saved in ``last.pt``."""

    epoch: int = 0  # the epoch running (0-based); after a resume, the first one to run
    step: int = 0  # steps taken, skipped ones included (the KL schedule's clock)
    best_val_loss: float = math.inf
    best_epoch: int = -1  # 1-based epoch of best.pt
    nonfinite_steps: int = 0  # every skipped non-finite step of the run
    consecutive_nonfinite: int = 0  # runs on across epochs and mid-epoch resumes
    mol_per_s: float = 0.0  # training throughput of the last epoch
    # inside the running epoch: batches done, loss sums and molecules so far, seconds trained
    batch: int = 0
    sums: dict[str, float] = field(default_factory=_zero_sums)
    n_mol: int = 0
    train_time: float = 0.0
    n_batches: int = 0  # the epoch's batch count (checked on a mid-epoch resume)
    last_row: dict[str, Any] | None = None  # metrics row of the last finished epoch
    batching: dict[str, Any] = field(default_factory=lambda: dict(LEGACY_BATCHING))
    # the loss settings (`TrainConfig.objective_state`); None: a last.pt that did not record them
    objective: dict[str, Any] | None = None

    @property
    def fresh(self) -> bool:
        """No step taken and no batch begun: a new run, not a resumed one."""
        return self.step == 0 and self.batch == 0

    def start_epoch(self, epoch: int) -> None:
        """Reset the in-epoch position and sums for a new epoch."""
        self.epoch, self.batch, self.n_mol, self.train_time = epoch, 0, 0, 0.0
        self.sums = _zero_sums()

    def train_state(
        self, opt: torch.optim.Optimizer, sched: Any, in_epoch: bool = False
    ) -> dict[str, Any]:
        """The ``train_state`` of ``last.pt``: at the end of epoch ``self.epoch``, or with
        ``in_epoch`` after ``self.batch`` batches of it (``epoch`` is then the last finished one,
        so a reader that ignores ``in_epoch`` restarts the running epoch)."""
        state = {
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "epoch": self.epoch - 1 if in_epoch else self.epoch,
            "step": self.step,
            "best_val_loss": self.best_val_loss,
            "best_epoch": self.best_epoch,
            "nonfinite_steps": self.nonfinite_steps,
            "consecutive_nonfinite": self.consecutive_nonfinite,
            "batching": dict(self.batching),
            "rng": rng_state(),
        }
        if self.objective is not None:
            state["objective"] = dict(self.objective)
        if in_epoch:
            state["in_epoch"] = {
                "epoch": self.epoch, "batch": self.batch, "sums": dict(self.sums),
                "n_mol": self.n_mol, "train_time": self.train_time, "n_batches": self.n_batches,
            }  # fmt: skip
        return state


def seed_all(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """The global RNG states (torch, numpy, Python, CUDA when present) as checkpoint-safe lists."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), *n[2:]))
    p = state["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def resume_from(
    path: Path,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    sched: Any,
    device: torch.device,
) -> tuple[LoopState, dict[str, Any] | None]:
    """Load ``last.pt`` into ``model``, ``opt`` and ``sched`` and restore the RNG states.

    Returns the loop state to go on from (at the next epoch, or inside the epoch it was
    written in) and the metrics row of the last finished epoch saved with it.
    """
    ck = load_checkpoint(path, map_location=device)
    if ck.train_state is None:
        raise RuntimeError(f"{path} has no training state to resume from")
    model.load_state_dict(ck.state_dict)
    ts = ck.train_state
    opt.load_state_dict(ts["optimizer"])
    sched.load_state_dict(ts["scheduler"])
    state = LoopState(
        epoch=int(ts["epoch"]) + 1,
        step=int(ts["step"]),
        best_val_loss=float(ts["best_val_loss"]),
        best_epoch=int(ts["best_epoch"]),
        nonfinite_steps=int(ts.get("nonfinite_steps", 0)),
        consecutive_nonfinite=int(ts.get("consecutive_nonfinite", 0)),
        last_row=ck.meta.get("metrics"),
        batching=dict(ts.get("batching", LEGACY_BATCHING)),
        objective=dict(ts["objective"]) if "objective" in ts else None,
    )
    pos = ts.get("in_epoch")
    if pos is not None:
        state.epoch, state.batch, state.n_mol = int(pos["epoch"]), int(pos["batch"]), pos["n_mol"]
        state.sums = {k: float(v) for k, v in pos["sums"].items()}
        state.train_time, state.n_batches = float(pos["train_time"]), int(pos["n_batches"])
    set_rng_state(ts["rng"])
    return state, state.last_row


def start_state(
    out: Path,
    resume: bool,
    main: bool,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    sched: Any,
    device: torch.device,
) -> LoopState:
    """Where the loop starts: from ``out/last.pt`` when resuming, else afresh (rank 0 then removes
    an earlier run's ``metrics.csv``). Resuming with no ``last.pt`` (killed before the first epoch
    ended) starts afresh, so the same command can always be rerun after a crash."""
    last, metrics = out / "last.pt", out / "metrics.csv"
    if resume and last.exists():
        st, last_row = resume_from(last, model, opt, sched, device)
        if main:
            truncate_metrics(metrics, st.epoch, last_row)
        return st
    if main and metrics.exists():
        metrics.unlink()
    return LoopState()


def append_metrics(path: Path, row: dict[str, Any]) -> None:
    """Add one epoch's row to ``metrics.csv`` (with a header when the file is new).

    The whole file is rewritten atomically, so a kill never leaves half a row. A row with other
    columns than the file's (a run resumed by a newer molvae) rewrites it with all columns.
    """
    new = not path.exists()
    if not new:
        old_df = pd.read_csv(path)
        if list(old_df.columns) != list(row):
            write_csv(path, pd.concat([old_df, pd.DataFrame([row])], ignore_index=True))
            return
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(row))
    if new:
        w.writeheader()
    w.writerow(row)
    # as bytes, so the csv module's \r\n line ends stay as they are on every platform
    old = b"" if new else path.read_bytes()
    write_bytes(path, old + buf.getvalue().encode("utf-8"))


def truncate_metrics(
    path: Path, keep_through_epoch: int, last_row: dict[str, Any] | None = None
) -> None:
    """Drop rows of epochs after ``keep_through_epoch`` (1-based) left by an interrupted run.

    ``last_row`` (the metrics stored in ``last.pt``) restores that epoch's row when a kill
    between saving ``last.pt`` and appending the row lost it, so each epoch appears once.
    """
    text = path.read_text() if path.exists() else ""
    text = text[: text.rfind("\n") + 1]  # a row cut off mid-write is not a finished row
    df = pd.read_csv(io.StringIO(text)) if text else pd.DataFrame()
    if len(df):
        df = df[df["epoch"] <= keep_through_epoch]
    if last_row and (df.empty or keep_through_epoch not in set(df["epoch"])):
        df = pd.concat([df, pd.DataFrame([last_row])], ignore_index=True)
    if df.empty:
        path.unlink(missing_ok=True)
    else:
        write_csv(path, df)
