"""The property head's targets: which properties, in what units, and its loss over molecules
whose property could not be computed (NaN: masked)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class PropertyScale:
    """What the property head predicts: target names and the training set's means and standard
    deviations (the head learns standardized targets). Stored in checkpoint meta "properties"."""

    names: list[str]
    mean: list[float]
    std: list[float]

    @classmethod
    def from_meta(cls, meta: dict | None) -> PropertyScale | None:
        """The scale in a checkpoint's ``meta["properties"]`` (None when it has none)."""
        p = (meta or {}).get("properties")
        return cls(list(p["names"]), list(p["mean"]), list(p["std"])) if p else None

    def to_units(self, y: Tensor) -> Tensor:
        """Standardized ``batch x p`` predictions -> the properties' own units."""
        std = torch.tensor(self.std, dtype=y.dtype, device=y.device)
        return y * std + torch.tensor(self.mean, dtype=y.dtype, device=y.device)


def masked_mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error over the targets that are not NaN (NaN = the property failed for
    that molecule: it adds nothing). Infinite targets are not masked: they make the loss
    non-finite, which the trainer skips and counts."""
    missing = torch.isnan(target)
    if not bool(missing.any()):
        return F.mse_loss(pred, target)
    diff = torch.where(missing, torch.zeros_like(pred), pred - target.nan_to_num(0.0))
    return diff.pow(2).sum() / (~missing).sum().clamp(min=1)


def masked_mse_per_column(pred: Tensor, target: Tensor) -> Tensor:
    """`masked_mse` of each column of ``batch x p`` on its own, ``p``: NaN for a column
    without a target."""
    missing = torch.isnan(target)
    diff = torch.where(missing, torch.zeros_like(pred), pred - target.nan_to_num(0.0))
    return diff.pow(2).sum(0) / (~missing).sum(0)
