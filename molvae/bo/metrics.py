"""Campaign scores: best, top-k mean and the top-k AUC of the PMO benchmark.

The top-k AUC (Gao et al. 2022, "Sample efficiency matters", the PMO benchmark) is the area under
the curve of the running top-k mean against the number of oracle calls, divided by the budget:
a method that finds good molecules early scores higher than one that finds them late. It is
computed as PMO's ``top_auc`` does: the curve is sampled every ``freq_log`` calls (PMO: 100) and
at the last call, integrated by trapezoids from 0 (the first segment starts at a top-k mean of 0),
and a run that stopped before the budget is padded with its last top-k mean up to the budget.
Oracle calls are the molecules scored (ok, or infeasible: scored but missing a campaign
constraint), in the order they were scored; an infeasible call spends the budget without adding
a candidate, and until a first feasible molecule the curve stays at the 0 it starts from. Only
the molecules a method proposed count (the initial design, shared by all methods, does not).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

PMO_FREQ_LOG = 100


def top_k_mean(scores: Sequence[float], k: int = 10) -> float:
    """Mean of the ``k`` best finite scores (of all of them when fewer); NaN when there are
    none (NaN marks a call that gave no candidate, e.g. an infeasible molecule)."""
    s = np.asarray(scores, dtype=float)
    s = np.sort(s[np.isfinite(s)])[::-1][:k]
    return float(s.mean()) if len(s) else math.nan


def top_k_auc(
    scores: Sequence[float],
    k: int = 10,
    budget: int | None = None,
    freq_log: int = PMO_FREQ_LOG,
    finish: bool = True,
) -> float:
    """PMO's top-k AUC of ``scores`` (one per oracle call, in call order), normalized by
    ``budget`` (default: the number of calls); calls past the budget are ignored.

    With ``finish`` (PMO's setting for a finished run) a run of fewer calls than the budget is
    padded with its last top-k mean. NaN when there are no scores.
    """
    s = np.asarray(scores, dtype=float)
    budget = int(budget) if budget else len(s)
    s = s[:budget]
    n = len(s)
    if n == 0 or budget <= 0:
        return math.nan
    total, prev, called = 0.0, 0.0, 0
    for idx in range(freq_log, min(n, budget), freq_log):
        now = _or_zero(top_k_mean(s[:idx], k))
        total += freq_log * (now + prev) / 2
        prev, called = now, idx
    now = _or_zero(top_k_mean(s, k))
    total += (n - called) * (now + prev) / 2
    if finish and n < budget:
        total += (budget - n) * now
    return total / budget


def _or_zero(value: float) -> float:
    return 0.0 if math.isnan(value) else value


def proposed_scores(history: pd.DataFrame) -> np.ndarray:
    """One entry per oracle call on a molecule a method proposed (iteration > 0), in order: its
    score when ok, NaN when infeasible (the call was spent, no candidate came of it)."""
    if history.empty:
        return np.array([], dtype=float)
    own = history[(history["iteration"] > 0) & history["status"].isin(["ok", "infeasible"])]
    scores = own["score"].to_numpy(dtype=float)
    ok = (own["status"] == "ok").to_numpy()
    scores = np.where(ok, scores, np.nan)
    return scores[np.isfinite(scores) | ~ok]


def campaign_metrics(history: pd.DataFrame, budget: int, k: int = 10) -> dict[str, float]:
    """Best, top-``k`` mean and top-``k`` AUC (PMO) of a campaign's own proposals; the AUC is
    normalized by ``budget``."""
    scores = proposed_scores(history)
    return {
        "best": float(np.nanmax(scores)) if np.isfinite(scores).any() else math.nan,
        f"top{k}_mean": top_k_mean(scores, k),
        f"top{k}_auc": top_k_auc(scores, k, budget),
        "scored": len(scores),
    }
