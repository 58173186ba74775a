"""Where the trust region sits: its centre, its best score, and where it restarts.

Until its first restart a region follows the incumbent (the best observation), as TuRBO does.
When it shrinks below its minimum it restarts (TuRBO, Eriksson et al. 2019) around another good
point: the best molecule scored ok that was neither a centre before nor proposed while the
collapsed region ran (those sit where it collapsed). From then on the region is centred on the
best molecule it has found itself, or on its restart point while it has found none better.
Everything is read from the history and the stored state, so a resumed campaign agrees.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from molvae.bo.store import z_columns
from molvae.bo.trust_region import TrustRegionState


def _scored(history: pd.DataFrame, dim: int) -> pd.DataFrame:
    """Rows scored ok with a finite score and latent vector."""
    if not len(history):
        return history
    ok = (history["status"] == "ok") & np.isfinite(history["score"].astype(float))
    return history[ok & np.isfinite(history[z_columns(dim)]).all(axis=1)]


def _best_row(rows: pd.DataFrame) -> pd.Series | None:
    if not len(rows):
        return None
    return rows.iloc[int(rows["score"].to_numpy(dtype=float).argmax())]


def region_best(history: pd.DataFrame, tr: TrustRegionState, t: int) -> float:
    """The best score the region compares batch ``t`` with, over rows of iterations before
    ``t`` (not the batch's own rows appended before a kill): the incumbent's until the first
    restart, then the best of the restart point and what the region found since."""
    before = history[history["iteration"] < t] if len(history) else history
    if tr.center is None:
        ok = before[before["status"] == "ok"] if len(before) else before
        scores = ok["score"].to_numpy(dtype=float) if len(ok) else np.array([])
        scores = scores[np.isfinite(scores)]
        return float(scores.max()) if len(scores) else math.nan
    own = before[before["iteration"] >= tr.since] if len(before) else before
    ok = own.loc[own["status"] == "ok", "score"].to_numpy(dtype=float) if len(own) else []
    return float(max([tr.center_score, *[s for s in ok if math.isfinite(s)]]))


def region_center(
    history: pd.DataFrame, tr: TrustRegionState | None, dim: int
) -> torch.Tensor | None:
    """Raw latent centre of the region (None: the incumbent, chosen by ``propose_batch``)."""
    if tr is None or tr.center is None:
        return None
    own = _scored(history, dim)
    own = own[own["iteration"] >= tr.since] if len(own) else own
    best = _best_row(own)
    if best is not None and float(best["score"]) > tr.center_score:
        return torch.tensor(best[z_columns(dim)].to_numpy(dtype=float), dtype=torch.float64)
    return torch.tensor(tr.center, dtype=torch.float64)


def restart_region(
    tr: TrustRegionState, history: pd.DataFrame, t: int, dim: int
) -> tuple[TrustRegionState, str]:
    """Centre a region that has just restarted (after batch ``t``) on another good point.

    Returns the new state and a one-line note. The molecules excluded are the earlier centres
    (where each region started and the best it found) and the collapsed region's own proposals;
    the best remaining scored molecule is the new centre, else the best not yet a centre, else
    the incumbent (said in the note).
    """
    rows = _scored(history, dim)
    # the region started at its restart point, or (never restarted) at the initial incumbent,
    # and ended at the best molecule it found
    start = tr.center_smiles if tr.center is not None else None
    if start is None and (first := _best_row(rows[rows["iteration"] == 0])) is not None:
        start = str(first["canonical"])
    current = _best_row(rows[rows["iteration"] >= tr.since] if tr.center is not None else rows)
    used = {*tr.used_centers, *([start] if start else [])}
    if current is not None:
        used.add(str(current["canonical"]))
    fresh = rows[(rows["iteration"] < tr.since) | (rows["iteration"] == 0)]
    fresh = fresh[~fresh["canonical"].isin(used)]
    choice = _best_row(fresh) if len(fresh) else _best_row(rows[~rows["canonical"].isin(used)])
    note = "around the next best earlier molecule"
    if choice is None:
        choice, note = _best_row(rows), "around the incumbent: no other scored molecule"
    if choice is None:
        return replace(tr, since=t + 1), "in place: nothing scored yet"
    return replace(
        tr,
        center=tuple(float(v) for v in choice[z_columns(dim)].to_numpy(dtype=float)),
        center_smiles=str(choice["canonical"]),
        center_score=float(choice["score"]),
        best_value=float(choice["score"]),
        since=t + 1,
        used_centers=tuple(sorted(used)),
    ), f"{note}: {choice['canonical']} ({float(choice['score']):.4g})"
