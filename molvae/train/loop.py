"""Training loop for :class:`~molvae.model.MolVAE` over token-id arrays.

Knows nothing of SMILES: it gets id arrays (bos..eos) and the vocabulary's tokens to store in the
checkpoints. Writes ``config.json``, ``metrics.csv``, ``best.pt`` and ``last.pt`` in ``out_dir``;
``last.pt`` also every ``checkpoint_minutes`` inside an epoch (`molvae.train.epoch`).

Under ``torchrun`` (``WORLD_SIZE`` > 1) it trains with DistributedDataParallel: each rank takes its
share of every epoch's batches, gradients are averaged, and only rank 0 validates and writes files.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Sampler

from molvae.data.batching import batch_sampler, sequence_lengths
from molvae.io import write_text
from molvae.model import MolVAE, VAEConfig
from molvae.model.checkpoint import versions
from molvae.model.conditional import META_KEY, condition_scale, grow_inputs
from molvae.model.device import resolve_device
from molvae.model.property_head import PropertyScale
from molvae.train.config import TrainConfig
from molvae.train.distributed import ShardedBatchSampler, init_distributed, sum_over_ranks
from molvae.train.epoch import TrainingDiverged, metrics_row, save_epoch, train_epoch
from molvae.train.memory import retain_freed_memory, use_fused_rnn
from molvae.train.probe import final_probe, probe_init
from molvae.train.run import TrainingRun, keep_recorded_objective
from molvae.train.schedules import lr_factor
from molvae.train.state import LoopState, seed_all, start_state
from molvae.train.validation import evaluate

log = logging.getLogger(__name__)

__all__ = ["TrainResult", "TrainingDiverged", "prepare", "train"]


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
    on_step: Callable[[LoopState], None] | None = None,
) -> TrainResult:
    """Train a :class:`MolVAE` and write checkpoints and metrics to ``out_dir``.

    ``train_props``/``val_props`` are ``n x property_dim`` arrays for the property head (NaN =
    unknown, masked). ``callback`` gets each epoch's metrics row, ``on_step`` the loop state
    after every step. ``resume`` continues from ``out_dir/last.pt`` (at an epoch's end or inside
    an epoch) with the same optimizer, scheduler, RNG states and batching. ``init_state`` starts
    a fresh run from trained weights (fine-tuning): tensors of the same name and shape are
    loaded, a property head of another size starts fresh. ``meta["properties"]`` (names, mean,
    std) tells the model its `PropertyScale`.
    """
    run, st = prepare(model_config, config, vocab_tokens, train_ids, out_dir,
                      train_props=train_props, resume=resume, init_state=init_state, meta=meta,
                      progress=progress, on_step=on_step)  # fmt: skip
    config = run.config  # a resumed run's: the loss settings its last.pt records
    for epoch in range(st.epoch, config.epochs):
        if st.batch == 0 or epoch != st.epoch:
            st.start_epoch(epoch)
        train_epoch(run, st)
        if run.world > 1:
            st.sums, st.n_mol = sum_over_ranks(st.sums, st.n_mol, run.device)
        if st.n_mol == 0 and st.consecutive_nonfinite > 0:
            # no finite step: saving would hide a diverged model
            raise TrainingDiverged(
                f"training stopped: no finite loss in epoch {epoch + 1} "
                f"({st.consecutive_nonfinite} consecutive non-finite steps); "
                "lower lr or check the data"
            )
        st.mol_per_s = st.n_mol / max(st.train_time, 1e-9)
        if run.main:  # rank 0 validates and writes; the others go on to the next epoch
            val = evaluate(run.model, val_ids, config, run.device, val_props)
            row = metrics_row(run, st, val)
            save_epoch(run, st, row)
            if callback is not None:
                callback(row)
        st.start_epoch(epoch + 1)
    if run.main and config.final_probe:
        final_probe(run, val_ids, val_props)
    return _finish(run, st)


def prepare(
    model_config: VAEConfig,
    config: TrainConfig,
    vocab_tokens: list[str],
    train_ids: Sequence[np.ndarray],
    out_dir: str | Path,
    *,
    train_props: np.ndarray | None = None,
    resume: bool = False,
    init_state: dict[str, torch.Tensor] | None = None,
    meta: dict | None = None,
    progress: bool = False,
    on_step: Callable[[LoopState], None] | None = None,
) -> tuple[TrainingRun, LoopState]:
    """Everything `train` sets up before its first step (arguments as there): the run and the
    loop state to start from. With `molvae.train.epoch.train_step` it lets a benchmark step
    the trainer one batch at a time."""
    base_meta = {"trained_on": None, **(meta or {}), "versions": versions()}
    run = _setup(model_config, config, Path(out_dir), train_ids, train_props, init_state,
                 progress, vocab_tokens, base_meta, on_step)  # fmt: skip
    st = start_state(run.out, resume, run.main, run.model, run.opt, run.sched, run.device)
    if (
        st.fresh
        and init_state is not None
        and run.model.y_head is not None
        and train_props is not None
    ):
        # LP-FT: q(y|x) starts as a ridge fit on the trained encoder (`molvae.train.probe`)
        run.base_meta["probe"] = probe_init(run.model, train_ids, train_props, run.device,
                                            config.seed)  # fmt: skip
    keep_recorded_objective(run, st)
    _schedule(run, st)
    return run, st


def _setup(
    model_config: VAEConfig,
    config: TrainConfig,
    out: Path,
    train_ids: Sequence[np.ndarray],
    train_props: np.ndarray | None,
    init_state: dict[str, torch.Tensor] | None,
    progress: bool,
    vocab_tokens: list[str],
    base_meta: dict[str, Any],
    on_step: Callable[[LoopState], None] | None,
) -> TrainingRun:
    """Process group, seeds, ``config.json``, model, optimizer and LR schedule (its length is
    known once the batches are: `_schedule`; the factor at step 0 does not depend on it)."""
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
    model.property_scale = PropertyScale.from_meta(base_meta)
    model.condition_scale = condition_scale(base_meta)
    model.fused_rnn = use_fused_rnn(config, device)
    model.fused_bf16 = config.rnn == "fused"
    if config.retain_memory and device.type == "cpu":
        retain_freed_memory()
    if init_state is not None:
        load_matching(model, init_state)
    cov = (base_meta.get(META_KEY) or {}).get("cov")
    if model.y_head is not None and cov is not None:  # p(y): the labels' correlations
        model.y_prior_cov.copy_(torch.tensor(cov, dtype=torch.float32))
    net: torch.nn.Module = model
    if world > 1:
        # broadcasts rank 0's initial weights; backward() then averages gradients over ranks
        net = DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            # a conditional model's adversary sits out batches without labels
            find_unused_parameters=(model.prop_head is not None and train_props is None)
            or model.y_head is not None,
        )
    opt = torch.optim.AdamW(_param_groups(model, config), lr=config.lr,
                            weight_decay=config.weight_decay)  # fmt: skip
    run = TrainingRun(out, config, rank, world, device, created_group, progress and rank == 0,
                      model, net, opt, train_ids, train_props, vocab_tokens, base_meta,
                      on_step)  # fmt: skip
    run.sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, run.total_steps, config)
    )
    return run


def _param_groups(model: MolVAE, config: TrainConfig) -> list[dict[str, Any]]:
    """All parameters at ``lr``; a conditional model's adversary, which starts fresh, at ``lr *
    head_lr_scale``."""
    heads = [p for n, p in model.named_parameters() if n.startswith("z_adversary.")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("z_adversary.")]
    if not heads:
        return [{"params": rest}]
    return [{"params": rest}, {"params": heads, "lr": config.lr * config.head_lr_scale}]


def _schedule(run: TrainingRun, st: LoopState) -> None:
    """The batches and the LR schedule's length. A resumed run keeps the batching its ``last.pt``
    records (runs written before batching was a setting: the one they used)."""
    config = run.config
    if st.fresh:
        st.batching = config.batching_state()
    elif st.batching != config.batching_state():
        log.warning("resuming with the batching of %s: %s (requested %s)",
                    run.out / "last.pt", st.batching, config.batching_state())  # fmt: skip
    sampler: Sampler = batch_sampler(
        sequence_lengths(run.ids), config.batch_size, seed=config.seed, **st.batching
    )
    if run.world > 1:
        sampler = ShardedBatchSampler(sampler, run.rank, run.world)
    run.sampler = sampler
    run.steps_per_epoch = len(sampler)
    if config.max_steps_per_epoch:
        run.steps_per_epoch = min(run.steps_per_epoch, config.max_steps_per_epoch)
    run.total_steps = run.steps_per_epoch * config.epochs  # the LR schedule's length


def load_matching(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load ``state`` into ``model`` where names and shapes agree; only the property head may
    differ (fine-tuning with other properties): it keeps its fresh weights, and the log says so.
    An unconditional model's weights start a conditional one (`grow_inputs`: zero weights on
    the new y inputs, so it starts as the model it came from; q(y|x) starts fresh).
    """
    own = model.state_dict()
    state = grow_inputs(state, own)
    fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    fresh = sorted(set(own) - set(fits))
    dropped = sorted(set(state) - set(fits))
    free = ("prop_head.", "y_head.", "y_mlp.", "y_kernel.", "y_prior_cov", "z_adversary.")
    if any(not k.startswith(free) for k in fresh + dropped):
        raise ValueError(f"init weights do not fit the model: {[*fresh, *dropped][:4]}")
    model.load_state_dict({**own, **fits})
    if fresh or dropped:
        log.info("init weights: %d tensors loaded; the property head and q(y|x) start fresh "
                 "(property_dim %d, condition_dim %d)", len(fits), model.config.property_dim,
                 model.config.condition_dim)  # fmt: skip


def _finish(run: TrainingRun, st: LoopState) -> TrainResult:
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
