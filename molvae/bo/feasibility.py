"""Which candidates a campaign may choose under its constraints, and which scored molecules
missed a constraint the candidate check cannot see.

Cheap constraints (`molvae.chem.constraints.cheap_constraints`: properties computed from the
molecule) are checked on every candidate through the campaign's ``slack_fn``; an expensive one
(docking) is checked only in the oracle call of a molecule chosen to be scored, so what the
surrogate knows of it comes from the "infeasible" statuses recorded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from molvae.bo.config import SlackFn


def feasible_first(pool: list[str], slack_fn: SlackFn | None) -> list[str]:
    """The candidates that meet every constraint; when none does, the least violating tenth
    (at least one), so the campaign still learns where the constraints bind."""
    if slack_fn is None or not pool:
        return pool
    excess = np.nan_to_num(np.asarray(slack_fn(pool), dtype=float), nan=np.inf)
    excess = np.clip(excess, 0, None).sum(axis=1) if excess.ndim == 2 else np.clip(excess, 0, None)
    ok = [c for c, e in zip(pool, excess, strict=True) if e <= 0]
    if ok:
        return ok
    order = np.argsort(excess, kind="stable")[: max(len(pool) // 10, 1)]
    return [pool[i] for i in sorted(order)]


def hidden_infeasible(history: pd.DataFrame, slack_fn: SlackFn | None) -> set[str]:
    """Molecules recorded "infeasible" that meet every constraint ``slack_fn`` computes: they
    missed an expensive constraint (docking), which only their oracle call checked, so the
    candidate filter cannot see it."""
    if history.empty:
        return set()
    missed = [c for c in history.loc[history["status"] == "infeasible", "canonical"] if c]
    missed = list(dict.fromkeys(missed))
    if not missed or slack_fn is None:
        return set(missed)
    slack = np.asarray(slack_fn(missed), dtype=float).reshape(len(missed), -1)
    return {c for c, row in zip(missed, slack, strict=True) if (row <= 0).all()}
