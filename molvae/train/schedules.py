"""The KL weight (beta) and learning-rate schedules, as functions of the global step, and the
KL term of the loss (free bits)."""

from __future__ import annotations

import math

import torch

from molvae.train.config import TrainConfig


def kl_weight(step: int, steps_per_epoch: int, config: TrainConfig) -> float:
    """beta at global ``step``: ramps 0 -> beta_max over ``kl_warmup_epochs`` (or constant, or
    cyclical: the ramp repeats every ``kl_cycle_epochs``, Fu et al. 2019)."""
    if config.kl_schedule == "cyclical":
        cycle = config.kl_cycle_epochs * steps_per_epoch
        ramp = config.kl_cycle_ramp * cycle
        if cycle <= 0 or ramp <= 0:
            return config.beta_max
        return config.beta_max * min(1.0, (step % cycle) / ramp)
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


def kl_term(kl: torch.Tensor, kl_dims: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """The KL part of the training loss before beta: the per-molecule KL, or with free bits
    ``sum_d max(free_bits, KL_d)`` where ``KL_d`` is dimension d's KL averaged over the batch."""
    if config.free_bits <= 0:
        return kl
    return kl_dims.clamp(min=config.free_bits).sum()


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
