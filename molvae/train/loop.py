"""Training loop for :class:`~molvae.model.MolVAE` over token-id arrays.

Knows nothing of SMILES: it gets id arrays (bos..eos) and the vocabulary's tokens to store in the
checkpoints. Writes ``config.json``, ``metrics.csv``, ``best.pt`` and ``last.pt`` in ``out_dir``.

Under ``torchrun`` (``WORLD_SIZE`` > 1) it trains with DistributedDataParallel: each rank takes its
share of every epoch's batches, gradients are averaged, and only rank 0 validates and writes files.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from molvae.data.batching import make_loader
from molvae.io import write_text
from molvae.model import MolVAE, VAEConfig
from molvae.model.checkpoint import save_checkpoint, versions
from molvae.model.device import autocast, resolve_device
from molvae.train.config import TrainConfig
from molvae.train.distributed import (
    ShardedBatchSampler,
    all_finite,
    init_distributed,
    sum_over_ranks,
)
from molvae.train.schedules import kl_weight, lr_factor
from molvae.train.state import LoopState, append_metrics, seed_all, start_state
from molvae.train.validation import _props, evaluate


class TrainingDiverged(RuntimeError):
    """Too many consecutive non-finite losses: the run stopped (the message says where)."""


@dataclass
class TrainResult:
    """Where the checkpoints are and how training went."""

    out_dir: Path
    best_path: Path
    last_path: Path
    history: pd.DataFrame  # one row per epoch (metrics.csv)
    best_val_loss: float
    best_epoch: int
    molecules_per_second: float  # training throughput of the last epoch (all ranks together)
    nonfinite_steps: int
    model: MolVAE | None = None  # the trained module (every rank has the same weights)
    world_size: int = 1


@dataclass
class _Run:
    """What stays fixed for the whole run: where, on which rank and device, with what."""

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
    sched: torch.optim.lr_scheduler.LambdaLR
    loader: DataLoader
    steps_per_epoch: int

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def metrics_path(self) -> Path:
        return self.out / "metrics.csv"


def train(
    model_config: VAEConfig,
    config: TrainConfig,
    vocab_tokens: list[str],
    train_ids: Sequence[np.ndarray],
    val_ids: Sequence[np.ndarray],
    out_dir: str | Path,
    *,
    train_props: np.ndarray | None = None,
    val_props: np.ndarray | None = None,
    resume: bool = False,
    init_state: dict[str, torch.Tensor] | None = None,
    meta: dict | None = None,
    progress: bool = True,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train a :class:`MolVAE` and write checkpoints and metrics to ``out_dir``.

    ``train_props``/``val_props`` are ``n x property_dim`` arrays for the property head.
    ``callback`` gets each epoch's metrics row. ``resume`` continues from ``out_dir/last.pt``
    at the next epoch with the same optimizer, scheduler and RNG states. ``init_state`` (a
    state dict of the same architecture) starts a fresh run from trained weights: fine-tuning.
    """
    run = _setup(model_config, config, Path(out_dir), train_ids, train_props, init_state, progress)
    st = start_state(run.out, resume, run.main, run.model, run.opt, run.sched, run.device)
    base_meta = {"trained_on": None, **(meta or {}), "versions": versions()}
    for epoch in range(st.epoch, config.epochs):
        st.epoch = epoch
        sums, n_mol, train_time = _train_epoch(run, st, train_props)
        if run.world > 1:
            sums, n_mol = sum_over_ranks(sums, n_mol, run.device)
        if n_mol == 0 and st.consecutive_nonfinite > 0:
            # no finite step: saving would hide a diverged model
            raise TrainingDiverged(
                f"training stopped: no finite loss in epoch {epoch + 1} "
                f"({st.consecutive_nonfinite} consecutive non-finite steps); "
                "lower lr or check the data"
            )
        st.mol_per_s = n_mol / max(train_time, 1e-9)
        if not run.main:
            continue  # rank 0 validates and writes; the others go on to the next epoch
        val = evaluate(run.model, val_ids, config, run.device, val_props)
        row = _metrics_row(run, st, sums, n_mol, train_time, val)
        _save_epoch(run, st, row, vocab_tokens, base_meta)
        if callback is not None:
            callback(row)
    return _finish(run, st)


def _setup(
    model_config: VAEConfig,
    config: TrainConfig,
    out: Path,
    train_ids: Sequence[np.ndarray],
    train_props: np.ndarray | None,
    init_state: dict[str, torch.Tensor] | None,
    progress: bool,
) -> _Run:
    """Process group, seeds, ``config.json``, model, optimizer, loader and LR schedule."""
    rank, world, device, created_group = init_distributed(resolve_device(config.device))
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    if config.num_threads and device.type == "cpu":
        torch.set_num_threads(config.num_threads)
    seed_all(config.seed)
    if rank == 0:
        settings = {"model": model_config.to_dict(), "train": asdict(config), "world_size": world}
        write_text(out / "config.json", json.dumps(settings, indent=2))
    model = MolVAE(model_config).to(device)
    if init_state is not None:
        model.load_state_dict(init_state)
    net: torch.nn.Module = model
    if world > 1:
        # broadcasts rank 0's initial weights; backward() then averages gradients over ranks
        net = DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=model.prop_head is not None and train_props is None,
        )
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loader = make_loader(
        train_ids, config.batch_size, seed=config.seed, pad_id=model_config.pad_id, device=device
    )
    if world > 1:
        loader = DataLoader(
            loader.dataset,
            batch_sampler=ShardedBatchSampler(loader.batch_sampler, rank, world),
            collate_fn=loader.collate_fn,
            pin_memory=loader.pin_memory,
        )
    steps_per_epoch = len(loader)
    if config.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, config.max_steps_per_epoch)
    total_steps = steps_per_epoch * config.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total_steps, config))
    return _Run(out, config, rank, world, device, created_group, progress and rank == 0,
                model, net, opt, sched, loader, steps_per_epoch)  # fmt: skip


def _train_epoch(
    run: _Run, st: LoopState, train_props: np.ndarray | None
) -> tuple[dict[str, float], int, float]:
    """One epoch of updates on this rank: its loss sums, molecules and seconds."""
    config, device = run.config, run.device
    run.net.train()
    run.loader.batch_sampler.set_epoch(st.epoch)
    sums = {"loss": 0.0, "recon": 0.0, "kl": 0.0, "prop": 0.0}
    n_mol = 0
    bar = tqdm(total=run.steps_per_epoch, desc=f"epoch {st.epoch + 1}/{config.epochs}",
               disable=not run.progress, leave=False)  # fmt: skip
    t0 = time.perf_counter()
    for i, (x, lengths, idx) in enumerate(run.loader):
        if i >= run.steps_per_epoch:
            break
        x = x.to(device, non_blocking=True)
        props = _props(train_props, idx, device)
        beta = kl_weight(st.step, run.steps_per_epoch, config)
        with autocast(device, config.amp):
            o = run.net(x, lengths, props)
            loss = o.recon + beta * o.kl + config.prop_weight * o.prop_loss
        if _update(run, st, loss):
            b = x.shape[0]
            sums["loss"] += loss.item() * b
            sums["recon"] += o.recon.item() * b
            sums["kl"] += o.kl.item() * b
            sums["prop"] += o.prop_loss.item() * b
            n_mol += b
            run.sched.step()  # only after a real update, so skipped steps do not eat the schedule
        st.step += 1
        mps = n_mol / max(time.perf_counter() - t0, 1e-9)
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}", beta=f"{beta:.3f}", mol_s=f"{mps:.0f}")
    bar.close()
    return sums, n_mol, time.perf_counter() - t0


def _update(run: _Run, st: LoopState, loss: torch.Tensor) -> bool:
    """Backward, clip and step when the loss and gradients are finite on every rank; otherwise
    skip the update and count it (too many in a row raise :class:`TrainingDiverged`)."""
    run.opt.zero_grad(set_to_none=True)
    ok = all_finite(loss, run.world)
    if ok:
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.config.grad_clip)
        ok = bool(torch.isfinite(gnorm))
    if not ok:
        # skip the update; a run of them means the model has diverged
        run.opt.zero_grad(set_to_none=True)
        st.nonfinite_steps += 1
        st.consecutive_nonfinite += 1
        if st.consecutive_nonfinite > run.config.max_nonfinite_steps:
            raise TrainingDiverged(
                f"training stopped: {st.consecutive_nonfinite} consecutive non-finite losses "
                f"at epoch {st.epoch + 1}, step {st.step}; lower lr or check the data"
            )
        return False
    st.consecutive_nonfinite = 0
    run.opt.step()
    return True


def _metrics_row(
    run: _Run,
    st: LoopState,
    sums: dict[str, float],
    n_mol: int,
    train_time: float,
    val: dict[str, float],
) -> dict[str, Any]:
    """The epoch's ``metrics.csv`` row."""
    return {
        "epoch": st.epoch + 1,
        "step": st.step,
        "beta": kl_weight(st.step, run.steps_per_epoch, run.config),
        "lr": run.sched.get_last_lr()[0],
        **{f"train_{k}": v / max(n_mol, 1) for k, v in sums.items()},
        **{f"val_{k}": v for k, v in val.items()},
        "mol_per_s": st.mol_per_s,
        "train_time_s": train_time,
        "nonfinite_steps": st.nonfinite_steps,
    }


def _save_epoch(
    run: _Run, st: LoopState, row: dict[str, Any], vocab_tokens: list[str], base_meta: dict
) -> None:
    """``best.pt`` when the validation loss improved, then ``last.pt``, then the metrics row."""
    meta = {**base_meta, "epochs": st.epoch + 1, "metrics": row}
    if row["val_loss"] < st.best_val_loss:
        st.best_val_loss, st.best_epoch = row["val_loss"], st.epoch + 1
        save_checkpoint(run.out / "best.pt", run.model, vocab_tokens, meta)
    train_state = st.train_state(run.opt, run.sched)
    save_checkpoint(run.out / "last.pt", run.model, vocab_tokens, meta, train_state)
    # after last.pt: a crash in between loses a metrics row, never duplicates one on resume
    append_metrics(run.metrics_path, row)


def _finish(run: _Run, st: LoopState) -> TrainResult:
    """Wait for rank 0's files, read the history and leave the process group."""
    if run.world > 1:
        dist.barrier()  # rank 0's files are complete before any rank returns
    path = run.metrics_path
    history = pd.read_csv(path) if path.exists() else pd.DataFrame()
    if run.created_group:
        dist.destroy_process_group()
    out = run.out
    return TrainResult(
        out, out / "best.pt", out / "last.pt", history, st.best_val_loss, st.best_epoch,
        st.mol_per_s, st.nonfinite_steps, model=run.model, world_size=run.world,
    )  # fmt: skip
