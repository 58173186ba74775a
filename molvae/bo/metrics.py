"""Campaign scores: best, top-k mean and the top-k AUC of the PMO benchmark.

The top-k AUC (Gao et al. 2022, "Sample efficiency matters", the PMO benchmark) is the area under
the curve of the running top-k mean against the number of oracle calls, divided by the budget:
a method that finds good molecules early scores higher than one that finds them late. It is
computed as PMO's ``top_auc`` does: the curve is sampled every ``freq_log`` calls (PMO: 100) and
at the last call, integrated by trapezoids from 0 (the first segment starts at a top-k mean of 0),
and a run that stopped before the budget is padded with its last top-k mean up to the budget.
Oracle calls are those the budget paid for (`molvae.bo.accounting.oracle_call_scores`), in the
order they were made: the charged initial pool first, then the proposals; an infeasible or failed
call spends the budget without adding a candidate, and until a first feasible molecule the curve
stays at the 0 it starts from. With a free pool (Kusner's protocol) only the molecules a method
proposed count, scored ok or infeasible, as before the pool was charged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from molvae.bo.accounting import oracle_call_scores

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
    """`oracle_call_scores` of a free-pool campaign: one entry per molecule a method proposed
    (iteration > 0) and the objective scored, its score when ok, NaN when infeasible."""
    return oracle_call_scores(history, free_pool=True)


def campaign_metrics(
    history: pd.DataFrame, budget: int, k: int = 10, free_pool: bool = False
) -> dict[str, float]:
    """Best, top-``k`` mean and top-``k`` AUC (PMO) over the campaign's charged oracle calls
    (the counted pool included; with ``free_pool`` its own proposals only), ``scored``: how
    many; the AUC is normalized by ``budget``."""
    scores = oracle_call_scores(history, free_pool)
    return {
        "best": float(np.nanmax(scores)) if np.isfinite(scores).any() else math.nan,
        f"top{k}_mean": top_k_mean(scores, k),
        f"top{k}_auc": top_k_auc(scores, k, budget),
        "scored": len(scores),
    }
