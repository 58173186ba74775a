"""One proposed batch through the oracle: decode each z, pick a valid molecule, dedupe, score."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
import torch

from molvae.bo.config import BOConfig, CanonicalFn, DecodeFn, ObjectiveFn
from molvae.bo.store import known_scores


def choose_decoded(attempts: list[str], canonical_fn: CanonicalFn) -> tuple[str, str, float]:
    """Pick the most frequent valid canonical SMILES among decode attempts (ties: earliest).

    Returns ``(decoded, canonical, valid_fraction)``; ``canonical`` is ``""`` and ``decoded``
    the greedy attempt when no attempt is valid.
    """
    if not attempts:
        return "", "", 0.0
    cans = [canonical_fn(s) for s in attempts]
    valid = [(i, c) for i, c in enumerate(cans) if c]
    if not valid:
        return attempts[0], "", 0.0
    counts = Counter(c for _, c in valid)
    top = max(counts.values())
    i, can = next((i, c) for i, c in valid if counts[c] == top)
    return attempts[i], can, len(valid) / len(attempts)


def _score_batch(
    z: torch.Tensor,
    pending: dict[str, Any],
    history: pd.DataFrame,
    cfg: BOConfig,
    decode_fn: DecodeFn,
    objective_fn: ObjectiveFn,
    canonical_fn: CanonicalFn,
) -> list[dict[str, Any]]:
    """Decode, dedupe and score the rows of the pending batch not yet in ``history``."""
    t = pending["iteration"]
    done = set(history.loc[history["iteration"] == t, "index"]) if len(history) else set()
    todo = [i for i in range(z.shape[0]) if i not in done]
    if not todo:
        return []
    # Decode the whole batch with the iteration's seed so a resumed batch decodes identically.
    attempts = decode_fn(z.to(torch.float32), cfg.n_decode_attempts, pending["seed"])
    # ``known`` holds the rows of this batch appended before a kill too: a later row of a molecule
    # first seen earlier in the batch is then a duplicate with that row's score, exactly what
    # ``seen`` and the scoring below give it when the batch runs without a kill.
    known = known_scores(history)
    rows, to_score, seen = [], [], set()
    for i in todo:
        att = [attempts[i]] if isinstance(attempts[i], str) else list(attempts[i])
        decoded, can, frac = choose_decoded(att, canonical_fn)
        status = "invalid" if not can else "duplicate" if can in known or can in seen else "new"
        if status == "new":
            seen.add(can)
            to_score.append(can)
        rows.append(
            {"iteration": t, "index": i, "source": pending["source"], "smiles": decoded,
             "canonical": can, "score": math.nan, "status": status, "valid_fraction": frac,
             "z": z[i].tolist()}
        )  # fmt: skip
    if to_score:
        scores, status = objective_fn(to_score)
        for can, s, st in zip(to_score, np.asarray(scores, dtype=float), status, strict=True):
            ok = st == "ok" and math.isfinite(s)
            known[can] = float(s) if ok else math.nan
            new_status = "ok" if ok else "invalid" if st == "invalid" else "failed"
            for r in rows:
                if r["canonical"] == can and r["status"] == "new":
                    r["score"], r["status"] = known[can], new_status
    for r in rows:
        if r["status"] == "duplicate":
            r["score"] = known[r["canonical"]]
    return rows
