"""A conditional training run's labels: which it hides (``label_fraction``), what its
checkpoint records of them, and p(y)'s covariance."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from molvae.data.labels import keep_fraction


def hide_labels(
    props: tuple[np.ndarray, np.ndarray],
    names: Sequence[str],
    fraction: float | None,
    seed: int,
    from_file: Sequence[str],
) -> tuple[np.ndarray, np.ndarray]:
    """The computed properties (columns ``names`` not in ``from_file``) kept on a random share
    ``fraction`` of the molecules only (training and validation each, seeded; a labels file's
    measured columns are all kept). A property left without any training label is a
    ``ValueError``."""
    train, val = props[0].copy(), props[1].copy()
    cols = [j for j, n in enumerate(names) if n not in set(from_file)]
    if cols and fraction is not None:
        train[:, cols] = keep_fraction(train[:, cols], fraction, seed)
        val[:, cols] = keep_fraction(val[:, cols], fraction, seed + 1)
    empty = [n for j, n in enumerate(names) if not np.isfinite(train[:, j]).any()]
    if empty:
        raise ValueError(f"no training molecule has a label for {', '.join(empty)} "
                         f"({len(train)} training molecules)")  # fmt: skip
    return train, val


def label_record(
    train: np.ndarray, val: np.ndarray, fraction: float | None, labels: str | None
) -> dict[str, Any]:
    """What a conditional model's meta records of its labels: how many molecules had each label
    (training, validation), the fraction and labels file asked for, and ``cov``, p(y)'s
    covariance: the correlations of the standardized training labels (pairwise over molecules
    labelled on both; made positive definite)."""
    df = pd.DataFrame(np.asarray(train, dtype=np.float64))
    corr = df.corr(min_periods=3).to_numpy() if len(df) else np.eye(train.shape[1])
    corr = np.nan_to_num(corr, nan=0.0)
    np.fill_diagonal(corr, 1.0)
    w, v = np.linalg.eigh((corr + corr.T) / 2)
    corr = (v * np.clip(w, 1e-3, None)) @ v.T
    d = np.sqrt(np.diag(corr))
    corr = corr / np.outer(d, d)
    return {
        "labelled_train": np.isfinite(train).sum(axis=0).astype(int).tolist(),
        "labelled_val": np.isfinite(val).sum(axis=0).astype(int).tolist(),
        "label_fraction": fraction,
        "labels": labels,
        "cov": corr.tolist(),
    }
