"""The per-iteration table of a campaign report, shared by the Markdown and the HTML report."""

from __future__ import annotations

import pandas as pd

# Per iteration: what was proposed and what it decoded to (new-molecule rate, duplicates and
# invalid rows, and before re-drawing), the trust region and its restarts, timings.
ITERATION_COLUMNS = (
    "iteration", "source", "q", "n_ok", "n_new", "new_rate", "duplicate_rate", "invalid_rate",
    "primary_duplicate", "primary_invalid", "redrawn_attempt", "redrawn_spare", "best",
    "tr_length", "tr_restarted", "tr_center", "gp_points", "fit_s", "acq_s", "wall_s",
    "fallback",
)  # fmt: skip
RATE_COLUMNS = ("new_rate", "duplicate_rate", "invalid_rate")


def iteration_table(iterations: pd.DataFrame) -> pd.DataFrame:
    """The ``ITERATION_COLUMNS`` that ``state.json``'s records have, rates as percentages."""
    cols = [c for c in ITERATION_COLUMNS if c in iterations.columns]
    table = iterations[cols].copy()
    for c in RATE_COLUMNS:
        if c in table.columns:
            table[c] = table[c].map(lambda v: f"{100 * v:.0f}%")
    return table
