"""Weighted fine-tuning: a short run of the trainer on molecules drawn by weight (weighted
retraining, Tripp, Daxberger and Hernández-Lobato, NeurIPS 2020).

As in the paper's implementation the weights act through sampling, not through the loss: the
molecules of the fine-tuning "epoch" are drawn with replacement with probability proportional to
their weight, and the trainer (`molvae.train.loop.train`) runs its own loss on them unchanged:
reconstruction, the KL term at the model's KL weight, and the property head's loss where the model
has a head and properties are given. Nothing of the trainer is duplicated here.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from molvae.model import MolVAE
from molvae.train.config import TrainConfig
from molvae.train.loop import train
from molvae.train.state import rng_state, set_rng_state


@dataclass
class FinetuneConfig:
    """Settings of one weighted fine-tuning run.

    ``steps`` updates of ``batch_size`` molecules drawn by weight (with replacement), at a
    constant learning rate ``lr`` after ``warmup_steps`` of linear warm-up; a fresh AdamW each
    time (the optimizer state of the first training is not in a checkpoint). ``beta`` is the KL
    weight; None takes the one the checkpoint's training ended with (its ``meta["metrics"]
    ["beta"]``), else `TrainConfig.beta_max`. ``amp``: bf16 where the trainer would use it.
    """

    steps: int = 100
    batch_size: int = 64
    lr: float = 5e-4
    warmup_steps: int = 10
    beta: float | None = None
    amp: bool = True

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0 or self.warmup_steps < 0:
            raise ValueError("steps and batch_size must be >= 1, lr > 0, warmup_steps >= 0")


def weighted_draw(weights: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` indices drawn with replacement with probability proportional to ``weights``."""
    w = np.asarray(weights, dtype=float)
    if w.ndim != 1 or not len(w) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError("weights must be finite, non-negative and not all zero")
    return np.random.default_rng(seed).choice(len(w), size=n, replace=True, p=w / w.sum())


def model_beta(meta: dict[str, Any] | None) -> float:
    """The KL weight a checkpoint's training ended with (``meta["metrics"]["beta"]``), else
    `TrainConfig.beta_max`."""
    beta = ((meta or {}).get("metrics") or {}).get("beta")
    return float(beta) if beta is not None else TrainConfig.beta_max


def finetune(
    model: MolVAE,
    vocab_tokens: list[str],
    ids: Sequence[np.ndarray],
    weights: np.ndarray,
    config: FinetuneConfig,
    seed: int,
    *,
    props: np.ndarray | None = None,
    meta: dict[str, Any] | None = None,
) -> MolVAE:
    """A copy of ``model`` fine-tuned on the token-id arrays ``ids`` (bos..eos) drawn by
    ``weights`` (one per molecule); ``props`` (``n x property_dim``, standardized as the head
    was trained, NaN = unknown) trains the property head too. ``meta`` is the checkpoint's
    (its KL weight and property scale). The same arguments give the same weights on the same
    machine; the global RNG states are left as they were, so a caller's later draws do not
    depend on whether it fine-tuned or loaded a saved result. Returns the model in eval mode on
    ``model``'s device."""
    idx = weighted_draw(weights, config.steps * config.batch_size, seed)
    drawn = [ids[i] for i in idx]
    beta = config.beta if config.beta is not None else model_beta(meta)
    device = next(model.parameters()).device
    tcfg = TrainConfig(
        epochs=1, batch_size=config.batch_size, lr=config.lr, kl_schedule="constant",
        beta_max=beta, lr_decay="none", lr_warmup_steps=config.warmup_steps, device=str(device),
        amp=config.amp, seed=int(seed) % 2**31, val_recon_samples=0, checkpoint_minutes=0.0,
        max_steps_per_epoch=config.steps,
    )  # fmt: skip
    saved = rng_state()
    try:
        # the trainer writes its checkpoints and metrics; only the weights are kept
        with tempfile.TemporaryDirectory(prefix="molvae-finetune-") as tmp:
            result = train(
                model.config, tcfg, vocab_tokens, drawn, drawn[: config.batch_size], tmp,
                train_props=None if props is None else props[idx],
                val_props=None if props is None else props[idx[: config.batch_size]],
                init_state={k: v.detach().cpu() for k, v in model.state_dict().items()},
                meta={"properties": (meta or {}).get("properties")}, progress=False,
            )  # fmt: skip
    finally:
        set_rng_state(saved)
    tuned = result.model
    tuned.fused_rnn = tuned.fused_bf16 = False  # as a loaded model: decoding does not use them
    return tuned.to(device).eval()
