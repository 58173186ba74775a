"""When a campaign stops, and the one line that says why.

A campaign stops when its budget of new molecules is scored, after ``max_iterations`` when that
is set, and otherwise after ``ceil(budget / batch_size) + 2`` iterations at most: a search that
keeps decoding to known molecules must not loop on. Without ``max_iterations`` it also stops
early after ``EXHAUSTED_AFTER`` iterations in a row that found no new molecule.
"""

from __future__ import annotations

import math
from typing import Any

from molvae.bo.config import BOConfig

EXHAUSTED_AFTER = 2


def iteration_cap(cfg: BOConfig) -> int:
    """The most iterations a campaign runs: ``max_iterations``, else ``ceil(B / q) + 2``."""
    if cfg.max_iterations is not None:
        return cfg.max_iterations
    return math.ceil(cfg.budget / cfg.batch_size) + 2


def _waste(iterations: list[dict[str, Any]]) -> str:
    dup = sum(int(r.get("n_duplicate", 0)) for r in iterations)
    inv = sum(int(r.get("n_invalid", 0)) for r in iterations)
    n = sum(int(r.get("q", 0)) for r in iterations)
    return f"{dup} duplicates and {inv} invalid of {n} proposals"


def stop_reason(
    cfg: BOConfig, iterations: list[dict[str, Any]], t: int, remaining: int
) -> str | None:
    """Why the campaign stops before iteration ``t`` (one line), or None to go on.

    ``iterations``: the records of the finished iterations (``state.json``); ``remaining``: new
    molecules the budget still needs.
    """
    done, scored = t - 1, cfg.budget - remaining
    if remaining <= 0:
        return f"budget reached: {scored} new molecules scored in {done} iterations"
    if cfg.max_iterations is not None:
        if done >= cfg.max_iterations:
            return (f"max_iterations reached: {done} iterations, {scored} of {cfg.budget} "
                    f"molecules scored ({_waste(iterations)})")  # fmt: skip
        return None
    last = iterations[-EXHAUSTED_AFTER:]
    if len(last) == EXHAUSTED_AFTER and all(r.get("n_new", 1) == 0 for r in last):
        first, final = last[0]["iteration"], last[-1]["iteration"]
        return (f"stopped early: iterations {first}-{final} found no new molecule; "
                f"{scored} of {cfg.budget} scored ({_waste(iterations)})")  # fmt: skip
    cap = iteration_cap(cfg)
    if done >= cap:
        return (f"stopped early: {cap} iterations, the cap ceil(budget / batch_size) + 2, with "
                f"{scored} of {cfg.budget} molecules scored ({_waste(iterations)})")  # fmt: skip
    return None
