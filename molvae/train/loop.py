"""Training loop for :class:`~molvae.model.MolVAE` over token-id arrays.

Knows nothing of SMILES: it gets id arrays (bos..eos) and the vocabulary's tokens to store in the
checkpoints. Writes ``config.json``, ``metrics.csv``, ``best.pt`` and ``last.pt`` in ``out_dir``.

Under ``torchrun`` (``WORLD_SIZE`` > 1) it trains with DistributedDataParallel: each rank takes its
share of every epoch's batches, gradients are averaged, and only rank 0 validates and writes files.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
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

from molvae.batching import make_loader
from molvae.checkpoint import load_checkpoint, save_checkpoint, versions
from molvae.distributed import (
    ShardedBatchSampler,
    all_finite,
    init_distributed,
    sum_over_ranks,
)
from molvae.model import MolVAE, VAEConfig, fast_bf16, resolve_device


@dataclass
class TrainConfig:
    """Optimisation settings. ``best.pt`` is the epoch with the lowest validation loss
    ``recon + beta_max * kl + prop_weight * prop`` (a fixed beta, so epochs compare fairly)."""

    epochs: int = 10
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0  # AdamW's decoupled decay
    grad_clip: float = 50.0
    kl_schedule: str = "linear"  # "linear" | "sigmoid" | "constant"
    beta_max: float = 0.5  # weight on the per-molecule KL at the end of the warm-up
    kl_warmup_epochs: float = 3.0
    prop_weight: float = 1.0
    lr_decay: str = "cosine"  # "cosine" (to 0 over all steps, after warm-up) | "none"
    lr_warmup_steps: int = 200  # linear learning-rate warm-up
    device: str = "auto"  # auto = cuda if available else cpu
    amp: bool = True  # bf16 autocast where it is fast (`molvae.model.fast_bf16`), else fp32
    seed: int = 0
    max_steps_per_epoch: int | None = None  # smoke runs
    val_recon_samples: int = 1000  # val molecules for greedy string-level reconstruction
    num_threads: int | None = None  # torch.set_num_threads on CPU when given
    max_nonfinite_steps: int = 20  # consecutive NaN/inf losses tolerated before stopping
    val_batch_size: int = 1024


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


def kl_weight(step: int, steps_per_epoch: int, config: TrainConfig) -> float:
    """beta at global ``step``: ramps 0 -> beta_max over ``kl_warmup_epochs`` (or constant)."""
    warm = config.kl_warmup_epochs * steps_per_epoch
    if config.kl_schedule == "constant" or warm <= 0:
        return config.beta_max
    t = step / warm
    if config.kl_schedule == "linear":
        return config.beta_max * min(1.0, t)
    if config.kl_schedule == "sigmoid":
        # centred on the middle of the warm-up, ~beta_max/(1+e^-6) at its end
        return config.beta_max / (1.0 + math.exp(-12.0 * (t - 0.5)))
    raise ValueError(f"unknown kl_schedule {config.kl_schedule!r}")


def lr_factor(step: int, total_steps: int, config: TrainConfig) -> float:
    """Multiplier on ``lr``: linear warm-up, then cosine to zero (or flat)."""
    if step < config.lr_warmup_steps:
        return (step + 1) / config.lr_warmup_steps
    if config.lr_decay == "none":
        return 1.0
    if config.lr_decay != "cosine":
        raise ValueError(f"unknown lr_decay {config.lr_decay!r}")
    span = max(1, total_steps - config.lr_warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - config.lr_warmup_steps) / span)))


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), *n[2:]))
    p = state["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


@torch.no_grad()
def evaluate(
    model: MolVAE,
    ids: Sequence[np.ndarray],
    config: TrainConfig,
    device: torch.device,
    props: np.ndarray | None = None,
) -> dict[str, float]:
    """Validation loss parts (z = mu), teacher-forced token accuracy and the fraction of the first
    ``val_recon_samples`` molecules whose greedy decode from mu equals the input ids exactly."""
    model.eval()
    loader = make_loader(ids, config.val_batch_size, shuffle=False, pad_id=model.config.pad_id)
    sums = {"recon": 0.0, "kl": 0.0, "prop": 0.0}
    n = correct = tokens = exact = n_exact = 0
    for x, lengths, idx in loader:
        x = x.to(device)
        p = _props(props, idx, device)
        with _autocast(device, config.amp):
            out = model(x, lengths, p)
        b = x.shape[0]
        sums["recon"] += float(out.recon) * b
        sums["kl"] += float(out.kl) * b
        sums["prop"] += float(out.prop_loss) * b
        n += b
        correct += int(out.n_correct)
        tokens += int(out.n_tokens)
        m = min(b, config.val_recon_samples - n_exact)
        if m > 0:
            with _autocast(device, config.amp):
                gen = model.decode(out.mu[:m].float(), "greedy").cpu()
            for row in range(m):
                target = x[row, 1 : int(lengths[row])].cpu()
                hit = gen.shape[1] >= len(target) and torch.equal(gen[row, : len(target)], target)
                exact += int(hit)
            n_exact += m
    res = {k: v / max(n, 1) for k, v in sums.items()}
    res["loss"] = res["recon"] + config.beta_max * res["kl"] + config.prop_weight * res["prop"]
    res["token_acc"] = correct / max(tokens, 1)
    res["recon_acc"] = exact / max(n_exact, 1)
    return res


def _props(
    props: np.ndarray | None, idx: torch.Tensor, device: torch.device
) -> torch.Tensor | None:
    if props is None:
        return None
    return torch.as_tensor(np.asarray(props)[idx.numpy()], dtype=torch.float32).to(device)


def _autocast(device: torch.device, amp: bool) -> torch.autocast:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and fast_bf16(device))


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
    out = Path(out_dir)
    rank, world, device, created_group = init_distributed(resolve_device(config.device))
    main = rank == 0
    progress = progress and main
    if main:
        out.mkdir(parents=True, exist_ok=True)
    if config.num_threads and device.type == "cpu":
        torch.set_num_threads(config.num_threads)
    _seed_all(config.seed)
    if main:
        (out / "config.json").write_text(
            json.dumps(
                {"model": model_config.to_dict(), "train": asdict(config), "world_size": world},
                indent=2,
            )
        )
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
    start_epoch, step, best_loss, best_epoch, nonfinite = 0, 0, math.inf, -1, 0
    metrics_path = out / "metrics.csv"
    # Resume with no last.pt (killed before the first epoch ended) starts afresh, so the same
    # command can always be rerun after a crash.
    if resume and (out / "last.pt").exists():
        ck = load_checkpoint(out / "last.pt", map_location=device)
        if ck.train_state is None:
            raise RuntimeError(f"{out / 'last.pt'} has no training state to resume from")
        model.load_state_dict(ck.state_dict)
        ts = ck.train_state
        opt.load_state_dict(ts["optimizer"])
        sched.load_state_dict(ts["scheduler"])
        start_epoch, step = int(ts["epoch"]) + 1, int(ts["step"])
        best_loss, best_epoch = float(ts["best_val_loss"]), int(ts["best_epoch"])
        nonfinite = int(ts.get("nonfinite_steps", 0))
        _set_rng_state(ts["rng"])
        if main:
            _truncate_metrics(metrics_path, start_epoch, ck.meta.get("metrics"))
    elif main and metrics_path.exists():
        metrics_path.unlink()
    base_meta = {"trained_on": None, **(meta or {}), "versions": versions()}
    mps, consecutive = 0.0, 0  # consecutive non-finite steps run on across epochs
    for epoch in range(start_epoch, config.epochs):
        net.train()
        loader.batch_sampler.set_epoch(epoch)
        sums = {"loss": 0.0, "recon": 0.0, "kl": 0.0, "prop": 0.0}
        n_mol = 0
        bar = tqdm(
            total=steps_per_epoch,
            desc=f"epoch {epoch + 1}/{config.epochs}",
            disable=not progress,
            leave=False,
        )
        t0 = time.perf_counter()
        for i, (x, lengths, idx) in enumerate(loader):
            if i >= steps_per_epoch:
                break
            x = x.to(device, non_blocking=True)
            props = _props(train_props, idx, device)
            beta = kl_weight(step, steps_per_epoch, config)
            with _autocast(device, config.amp):
                o = net(x, lengths, props)
                loss = o.recon + beta * o.kl + config.prop_weight * o.prop_loss
            opt.zero_grad(set_to_none=True)
            ok = all_finite(loss, world)
            if ok:
                loss.backward()
                gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                ok = bool(torch.isfinite(gnorm))
            if not ok:
                # skip the update; a run of them means the model has diverged
                opt.zero_grad(set_to_none=True)
                nonfinite += 1
                consecutive += 1
                if consecutive > config.max_nonfinite_steps:
                    raise TrainingDiverged(
                        f"training stopped: {consecutive} consecutive non-finite losses "
                        f"at epoch {epoch + 1}, step {step}; lower lr or check the data"
                    )
            else:
                consecutive = 0
                opt.step()
                b = x.shape[0]
                sums["loss"] += loss.item() * b
                sums["recon"] += o.recon.item() * b
                sums["kl"] += o.kl.item() * b
                sums["prop"] += o.prop_loss.item() * b
                n_mol += b
                sched.step()  # only after a real update, so skipped steps do not eat the schedule
            step += 1
            mps = n_mol / max(time.perf_counter() - t0, 1e-9)
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", beta=f"{beta:.3f}", mol_s=f"{mps:.0f}")
        bar.close()
        train_time = time.perf_counter() - t0
        if world > 1:
            sums, n_mol = sum_over_ranks(sums, n_mol, device)
        if n_mol == 0 and consecutive > 0:  # no finite step: saving would hide a diverged model
            raise TrainingDiverged(
                f"training stopped: no finite loss in epoch {epoch + 1} "
                f"({consecutive} consecutive non-finite steps); lower lr or check the data"
            )
        mps = n_mol / max(train_time, 1e-9)
        if not main:
            continue  # rank 0 validates and writes; the others go on to the next epoch
        val = evaluate(model, val_ids, config, device, val_props)
        row = {
            "epoch": epoch + 1,
            "step": step,
            "beta": kl_weight(step, steps_per_epoch, config),
            "lr": sched.get_last_lr()[0],
            **{f"train_{k}": v / max(n_mol, 1) for k, v in sums.items()},
            **{f"val_{k}": v for k, v in val.items()},
            "mol_per_s": mps,
            "train_time_s": train_time,
            "nonfinite_steps": nonfinite,
        }
        if val["loss"] < best_loss:
            best_loss, best_epoch = val["loss"], epoch + 1
            save_checkpoint(
                out / "best.pt",
                model,
                vocab_tokens,
                {**base_meta, "epochs": epoch + 1, "metrics": row},
            )
        train_state = {
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "epoch": epoch,
            "step": step,
            "best_val_loss": best_loss,
            "best_epoch": best_epoch,
            "nonfinite_steps": nonfinite,
            "rng": _rng_state(),
        }
        save_checkpoint(
            out / "last.pt",
            model,
            vocab_tokens,
            {**base_meta, "epochs": epoch + 1, "metrics": row},
            train_state,
        )
        # after last.pt: a crash in between loses a metrics row, never duplicates one on resume
        _append_metrics(metrics_path, row)
        if callback is not None:
            callback(row)
    if world > 1:
        dist.barrier()  # rank 0's files are complete before any rank returns
    history = pd.read_csv(metrics_path) if metrics_path.exists() else pd.DataFrame()
    if created_group:
        dist.destroy_process_group()
    return TrainResult(
        out, out / "best.pt", out / "last.pt", history, best_loss, best_epoch, mps, nonfinite,
        model=model, world_size=world,
    )  # fmt: skip


def _append_metrics(path: Path, row: dict[str, Any]) -> None:
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)
        f.flush()


def _truncate_metrics(
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
        df.to_csv(path, index=False)
