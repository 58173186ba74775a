"""One epoch of updates, the checkpoints written inside it, and the files written at its end.

`train_epoch` runs the batches of an epoch from where the loop state stands (0, or the position
a mid-epoch ``last.pt`` recorded), so a run killed at any moment resumes with the same batches,
weights, optimizer, scheduler and RNG states as if it had never stopped.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from molvae.data.batching import collate
from molvae.model import conditional as cond
from molvae.model.checkpoint import save_checkpoint
from molvae.model.device import autocast
from molvae.train.distributed import all_finite
from molvae.train.schedules import kl_term, kl_weight
from molvae.train.state import LoopState, append_metrics
from molvae.train.validation import batch_props

if TYPE_CHECKING:
    from molvae.train.run import TrainingRun


class TrainingDiverged(RuntimeError):
    """Too many consecutive non-finite losses: the run stopped (the message says where)."""


def train_epoch(run: TrainingRun, st: LoopState) -> None:
    """This rank's updates for epoch ``st.epoch`` from batch ``st.batch`` on; the loss sums,
    molecules and seconds accumulate in ``st`` (``sums``, ``n_mol``, ``train_time``)."""
    run.net.train()
    run.sampler.set_epoch(st.epoch)
    batches = list(run.sampler)[: run.steps_per_epoch]
    if st.batch and st.n_batches != len(batches):
        raise RuntimeError(
            f"cannot resume inside epoch {st.epoch + 1}: last.pt was written after batch "
            f"{st.batch} of {st.n_batches}, but this run cuts the epoch into {len(batches)} "
            "(other data, batch size or seed?)"
        )
    st.n_batches = len(batches)
    bar = tqdm(total=len(batches), initial=st.batch, disable=not run.progress, leave=False,
               desc=f"epoch {st.epoch + 1}/{run.config.epochs}")  # fmt: skip
    t0, time_before = time.perf_counter(), st.train_time
    for i in range(st.batch, len(batches)):
        loss, beta = train_step(run, st, batches[i])
        st.batch = i + 1
        st.train_time = time_before + time.perf_counter() - t0
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}", beta=f"{beta:.3f}",
                        mol_s=f"{st.n_mol / max(st.train_time, 1e-9):.0f}")  # fmt: skip
        if st.batch < len(batches):
            _maybe_checkpoint(run, st)
        if run.on_step is not None:
            run.on_step(st)
    bar.close()


def train_step(run: TrainingRun, st: LoopState, batch: list[int]) -> tuple[float, float]:
    """One update on the molecules ``batch`` (indices into the run's ids): the loss and the KL
    weight. Adds to the epoch's sums in ``st`` and advances ``st.step``."""
    config, device = run.config, run.device
    x, lengths, idx = collate(run.ids, batch, run.model.config.pad_id)
    x = x.to(device, non_blocking=True)
    props = batch_props(run.train_props, idx, device)
    beta = kl_weight(st.step, run.steps_per_epoch, config)
    with autocast(device, config.amp):
        o = run.net(x, lengths, props)
        kl = kl_term(o.kl, o.kl_dims, config)
        loss = o.recon + beta * kl + config.prop_weight * o.prop_loss
        if o.y_term is not None:  # a conditional model: y is part of the latent
            loss = loss + beta * o.y_term
        if o.adv_fit is not None and config.adversary_weight > 0:
            fool = o.adv_fool.clamp(max=1.0)  # no gain past a constant guess
            loss = loss + o.adv_fit - config.adversary_weight * fool
        if o.y_term is not None and config.consistency_weight > 0:
            y = o.code[:, o.z.shape[-1] :]  # the decoder read [z, y]
            o.consistency = cond.consistency_loss(
                run.model, x, lengths, o.z, y, config.consistency_temperature,
                config.consistency_edit_fraction, config.consistency_edit_range,
            )  # fmt: skip
            loss = loss + config.consistency_weight * o.consistency
    if _update(run, st, loss):
        b = x.shape[0]
        parts = [("loss", loss), ("recon", o.recon), ("kl", o.kl), ("prop", o.prop_loss)]
        if o.y_term is not None:
            parts += [("y_term", o.y_term), ("adv", o.adv_fit)]
            if o.consistency is not None:
                parts.append(("consistency", o.consistency))
        for key, value in parts:
            st.sums[key] = st.sums.get(key, 0.0) + value.item() * b
        st.n_mol += b
        run.sched.step()  # only after a real update, so skipped steps do not eat the schedule
    st.step += 1
    return loss.item(), beta


def _update(run: TrainingRun, st: LoopState, loss: torch.Tensor) -> bool:
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


def _maybe_checkpoint(run: TrainingRun, st: LoopState) -> None:
    """Write ``last.pt`` with the position inside the epoch when ``checkpoint_minutes`` have
    passed since the last write (one process only: under DDP, only at epoch ends)."""
    minutes = run.config.checkpoint_minutes
    if minutes <= 0 or run.world > 1 or time.monotonic() - run.last_save < minutes * 60:
        return
    meta = {**run.base_meta, "epochs": st.epoch, "metrics": st.last_row}
    state = st.train_state(run.opt, run.sched, in_epoch=True)
    save_checkpoint(run.out / "last.pt", run.model, run.vocab_tokens, meta, state)
    run.last_save = time.monotonic()


def metrics_row(run: TrainingRun, st: LoopState, val: dict[str, float]) -> dict[str, Any]:
    """The epoch's ``metrics.csv`` row (``st`` holds the epoch's sums over all ranks)."""
    return {
        "epoch": st.epoch + 1,
        "step": st.step,
        "beta": kl_weight(st.step, run.steps_per_epoch, run.config),
        "lr": run.sched.get_last_lr()[0],
        **{f"train_{k}": v / max(st.n_mol, 1) for k, v in st.sums.items()},
        **{f"val_{k}": v for k, v in val.items()},
        "mol_per_s": st.mol_per_s,
        "train_time_s": st.train_time,
        "nonfinite_steps": st.nonfinite_steps,
    }


def save_epoch(run: TrainingRun, st: LoopState, row: dict[str, Any]) -> None:
    """``best.pt`` when the validation loss improved, then ``last.pt``, then the metrics row."""
    meta = {**run.base_meta, "epochs": st.epoch + 1, "metrics": row}
    if row["val_loss"] < st.best_val_loss:
        st.best_val_loss, st.best_epoch = row["val_loss"], st.epoch + 1
        save_checkpoint(run.out / "best.pt", run.model, run.vocab_tokens, meta)
    st.last_row = row
    save_checkpoint(run.out / "last.pt", run.model, run.vocab_tokens, meta,
                    st.train_state(run.opt, run.sched))  # fmt: skip
    run.last_save = time.monotonic()
    # after last.pt: a crash in between loses a metrics row, never duplicates one on resume
    append_metrics(run.metrics_path, row)
