"""Oracle accounting (PMO's rule, the one users pay by): which recorded rows are oracle calls the
budget paid for, in one place for the loop, the stopping rule, the metrics, ``state.json``, the
report and the CLI.

A call is the first time a canonical molecule reaches the objective: a row scored ``ok``,
``infeasible`` or ``failed`` (a failed call was paid for too), the initial pool included. A
duplicate is served from the record, an invalid string never reaches the objective, and the rows
of the caller's init data (source ``"data"``) were measured before the campaign: none is charged.
With ``free_pool`` (Kusner's protocol, and every campaign before the pool was charged) only
proposals (iteration > 0) scored ``ok`` or ``infeasible`` count.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# What the objective scored: "infeasible" molecules have a score but miss a constraint
# (`molvae.chem.constraints`); they count against the budget, never as the best.
SCORED = ("ok", "infeasible")
# What reached the objective and was paid for: a failed call too.
CALLED = ("ok", "infeasible", "failed")
DATA_SOURCE = "data"  # iteration-0 rows from the caller's init data: measured, never charged


def call_status(score: float, status: str) -> str:
    """A row's status from the objective's answer: its own when it scored (``SCORED``, finite),
    else ``invalid`` when it said so, else ``failed``."""
    if status in SCORED and np.isfinite(score):
        return status
    return "invalid" if status == "invalid" else "failed"


def charged_rows(history: pd.DataFrame, free_pool: bool) -> pd.Series:
    """Which rows are oracle calls the budget pays for (bool, aligned with ``history``): the
    rows that reached the objective (``CALLED``) but init data's; with ``free_pool``, proposals
    scored ``ok`` or ``infeasible``."""
    if history.empty:
        return pd.Series(False, index=history.index, dtype=bool)
    status = history["status"]
    if free_pool:
        return (history["iteration"] > 0) & status.isin(SCORED)
    if "source" not in history:  # a table built by hand, without init data
        return status.isin(CALLED)
    return status.isin(CALLED) & (history["source"] != DATA_SOURCE)


def oracle_calls(history: pd.DataFrame, free_pool: bool) -> int:
    """Oracle calls the campaign's budget has paid for so far (see `charged_rows`)."""
    return int(charged_rows(history, free_pool).sum())


def oracle_call_scores(history: pd.DataFrame, free_pool: bool) -> np.ndarray:
    """One entry per charged oracle call, in call order: its score when ``ok``, NaN when
    ``infeasible`` or ``failed`` (the call was spent, no candidate came of it)."""
    rows = history[charged_rows(history, free_pool)]
    scores = rows["score"].to_numpy(dtype=float) if len(rows) else np.array([], dtype=float)
    return np.where((rows["status"] == "ok").to_numpy(dtype=bool), scores, np.nan)


def oracle_call_counts(
    history: pd.DataFrame, free_pool: bool, pool: pd.DataFrame | None = None
) -> dict[str, int]:
    """``calls`` (charged), split into ``pool`` (the initial design) and ``proposals``, and
    what reached an objective for free: ``free_data`` (init data rows) and ``free_pool`` (with
    ``free_pool``: the molecules of ``pool``, pool.csv, scored; without it, the design's rows)."""
    charged = charged_rows(history, free_pool)
    if history.empty:
        return {"calls": 0, "pool": 0, "proposals": 0, "free_data": 0, "free_pool": 0}
    init = history["iteration"] == 0
    free = 0
    if free_pool:
        free = (int(pool["status"].isin(CALLED).sum()) if pool is not None
                else int((init & history["status"].isin(CALLED)
                          & (history["source"] != DATA_SOURCE)).sum()))  # fmt: skip
    return {"calls": int(charged.sum()), "pool": int((charged & init).sum()),
            "proposals": int((charged & ~init).sum()),
            "free_data": int((history["source"] == DATA_SOURCE).sum()),
            "free_pool": free}  # fmt: skip
