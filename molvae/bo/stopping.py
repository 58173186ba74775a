"""When a campaign stops, and the one line that says why.

A campaign stops when its budget of oracle calls is spent (`molvae.bo.accounting.oracle_calls`),
after ``max_iterations`` when that is set, and otherwise after ``ceil(B / batch_size) + 2``
iterations at most, ``B`` the budget the initial design left: a search that keeps decoding to
known molecules must not loop on. Without ``max_iterations`` it also stops early after
``EXHAUSTED_AFTER`` iterations in a row that found no new molecule.
"""

from __future__ import annotations

import math
from typing import Any

from molvae.bo.config import BOConfig

EXHAUSTED_AFTER = 2


def iteration_cap(cfg: BOConfig, initial_calls: int = 0) -> int:
    """The most iterations a campaign runs: ``max_iterations``, else ``ceil(B / q) + 2`` with
    ``B`` the budget left after the ``initial_calls`` the initial design was charged."""
    if cfg.max_iterations is not None:
        return cfg.max_iterations
    return math.ceil(max(cfg.budget - initial_calls, 0) / cfg.batch_size) + 2


def _waste(iterations: list[dict[str, Any]]) -> str:
    dup = sum(int(r.get("n_duplicate", 0)) for r in iterations)
    inv = sum(int(r.get("n_invalid", 0)) for r in iterations)
    n = sum(int(r.get("q", 0)) for r in iterations)
    return f"{dup} duplicates and {inv} invalid of {n} proposals"


def stop_reason(
    cfg: BOConfig,
    iterations: list[dict[str, Any]],
    t: int,
    remaining: int,
    initial_calls: int = 0,
) -> str | None:
    """Why the campaign stops before iteration ``t`` (one line), or None to go on.

    ``iterations``: the records of the finished iterations (``state.json``); ``remaining``:
    oracle calls the budget still allows; ``initial_calls``: those the initial design spent.
    """
    done, calls = t - 1, cfg.budget - remaining
    spent = f"{calls} of {cfg.budget} oracle calls"
    if remaining <= 0:
        return f"budget reached: {spent} in {done} iterations"
    if cfg.max_iterations is not None:
        if done >= cfg.max_iterations:
            return (f"max_iterations reached: {done} iterations, {spent} "
                    f"({_waste(iterations)})")  # fmt: skip
        return None
    last = iterations[-EXHAUSTED_AFTER:]
    if len(last) == EXHAUSTED_AFTER and all(r.get("n_new", 1) == 0 for r in last):
        first, final = last[0]["iteration"], last[-1]["iteration"]
        return (f"stopped early: iterations {first}-{final} found no new molecule; "
                f"{spent} ({_waste(iterations)})")  # fmt: skip
    cap = iteration_cap(cfg, initial_calls)
    if done >= cap:
        return (f"stopped early: {cap} iterations, the cap ceil(budget left after the initial "
                f"design / batch_size) + 2, with {spent} ({_waste(iterations)})")  # fmt: skip
    return None
