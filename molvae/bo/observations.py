"""What the surrogates are fitted on: a campaign history's rows with a known score, as tensors
(the latent GP) or (molecule, score) pairs (the fingerprint GP)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from molvae.bo.accounting import SCORED
from molvae.bo.store import z_columns


def observations(
    history: pd.DataFrame, dim: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(z ``n x d``, score ``n``, feasible ``n`` bool) of rows with a known score: ok,
    infeasible (scored, a constraint missed), and duplicates of either."""
    if history.empty:
        empty = torch.zeros(0, dtype=torch.float64)
        return torch.zeros(0, dim, dtype=torch.float64), empty, empty.bool()
    zc = z_columns(dim)
    status = history["status"]
    missed = set(history.loc[status == "infeasible", "canonical"])
    infeasible = (status == "infeasible") | (
        (status == "duplicate") & history["canonical"].isin(missed)
    )
    use = observed_rows(history, dim)
    x = torch.tensor(history.loc[use, zc].to_numpy(dtype=float), dtype=torch.float64)
    y = torch.tensor(history.loc[use, "score"].to_numpy(dtype=float), dtype=torch.float64)
    return x, y, torch.tensor(~infeasible[use].to_numpy(dtype=bool))


def observed_rows(history: pd.DataFrame, dim: int) -> pd.Series:
    """Which rows `observations` returns (bool, aligned with ``history``)."""
    use = history["status"].isin([*SCORED, "duplicate"]) & np.isfinite(history["score"])
    return use & np.isfinite(history[z_columns(dim)]).all(axis=1)


def scored_molecules(history: pd.DataFrame) -> list[tuple[str, float]]:
    """``(canonical, score)`` of every molecule the objective scored (ok or infeasible: the
    objective's value is known either way), first row of each, in recording order."""
    out: dict[str, float] = {}
    if history.empty:
        return []
    rows = history[history["status"].isin(SCORED)]
    for s, v in zip(rows["canonical"], rows["score"], strict=True):
        if s and s not in out and math.isfinite(float(v)):
            out[s] = float(v)
    return list(out.items())
