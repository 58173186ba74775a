"""One proposed batch through the oracle: decode each z, pick a new valid molecule (re-drawing
the proposals that decode to known ones), score the new molecules.

Re-drawing happens before the batch is spent: a proposal whose molecule is already in the
history, or earlier in the batch, takes the most frequent of its other decode attempts that is
new (``source`` ``<source>/attempt``), else the next spare candidate that decodes to a new
molecule (``<source>/spare``, with the spare's z; spares come in rounds, from the trust region
then ever larger boxes around it); so does a proposal none of whose attempts is valid. What
cannot be re-drawn is recorded as a duplicate or invalid row; the iteration's record counts what
the proposals decoded to before re-drawing (``primary_duplicate``, ``primary_invalid``). The
batch is resolved against the history *before* it, so a batch resumed after a kill resolves
exactly as it did; only its missing rows are then scored.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
import torch

from molvae.bo.accounting import SCORED, call_status
from molvae.bo.config import BOConfig, CanonicalFn, DecodeFn, ObjectiveFn, iteration_seed
from molvae.bo.pareto import known_vectors, split_values
from molvae.bo.store import known_scores

REDRAW_STATS = ("primary_duplicate", "primary_invalid", "redrawn_attempt", "redrawn_spare",
                "spares_decoded")  # fmt: skip


def _ranked(attempts: list[str], canonical_fn: CanonicalFn) -> tuple[list[tuple[int, str]], float]:
    """Valid attempts as (first index, canonical), most frequent first (ties: earliest), and
    the fraction of attempts that are valid."""
    cans = [canonical_fn(s) for s in attempts]
    valid = [(i, c) for i, c in enumerate(cans) if c]
    counts = Counter(c for _, c in valid)
    first: dict[str, int] = {}
    for i, c in valid:
        first.setdefault(c, i)
    ranked = sorted(first.items(), key=lambda kv: (-counts[kv[0]], kv[1]))
    return [(i, c) for c, i in ranked], len(valid) / max(len(attempts), 1)


def choose_decoded(attempts: list[str], canonical_fn: CanonicalFn) -> tuple[str, str, float]:
    """Pick the most frequent valid canonical SMILES among decode attempts (ties: earliest).

    Returns ``(decoded, canonical, valid_fraction)``; ``canonical`` is ``""`` and ``decoded``
    the greedy attempt when no attempt is valid.
    """
    if not attempts:
        return "", "", 0.0
    ranked, frac = _ranked(attempts, canonical_fn)
    if not ranked:
        return attempts[0], "", 0.0
    i, can = ranked[0]
    return attempts[i], can, frac


def _pick(
    attempts: list[str] | str, canonical_fn: CanonicalFn, taken: set[str], others: bool
) -> tuple[str, str, float, str]:
    """(decoded, canonical, valid fraction, kind): kind ``new`` (the majority is new),
    ``attempt`` (another attempt is new; only with ``others``), ``duplicate`` or ``invalid``."""
    att = [attempts] if isinstance(attempts, str) else list(attempts)
    ranked, frac = _ranked(att, canonical_fn)
    if not ranked:
        return (att[0] if att else ""), "", 0.0, "invalid"
    for rank, (i, can) in enumerate(ranked if others else ranked[:1]):
        if can not in taken:
            return att[i], can, frac, "new" if rank == 0 else "attempt"
    i, can = ranked[0]
    return att[i], can, frac, "duplicate"


def _row(index: int, source: str, pick: tuple[str, str, float, str], z: torch.Tensor) -> dict:
    decoded, can, frac, kind = pick
    status = {"new": "new", "attempt": "new"}.get(kind, kind)
    return {"index": index, "source": source, "smiles": decoded, "canonical": can,
            "score": math.nan, "status": status, "valid_fraction": frac,
            "z": z.tolist()}  # fmt: skip


def _redraw_from_spares(
    rows: list[dict], spare: torch.Tensor, seed: int, source: str, taken: set[str],
    cfg: BOConfig, decode_fn: DecodeFn, canonical_fn: CanonicalFn, stats: dict[str, int],
) -> None:  # fmt: skip
    """Replace duplicate and invalid rows by spare candidates that decode to new molecules.

    ``spare`` holds ``redraw_rounds`` equal blocks (one per round, e.g. from ever larger
    boxes); a round decodes twice as many of its block as rows are still to fill, seeded per
    round, and fills them in order.
    """
    need = [i for i, r in enumerate(rows) if r["status"] in ("duplicate", "invalid")]
    rounds = max(cfg.redraw_rounds, 1)
    block = spare.shape[0] // rounds
    for rnd in range(1, rounds + 1):
        if not need or block == 0:
            break
        zs = spare[(rnd - 1) * block : (rnd - 1) * block + min(block, 2 * len(need))]
        stats["spares_decoded"] += zs.shape[0]
        attempts = decode_fn(zs.to(torch.float32), cfg.n_decode_attempts, iteration_seed(seed, rnd))
        for j in range(zs.shape[0]):
            pick = _pick(attempts[j], canonical_fn, taken, others=True)
            if pick[3] in ("new", "attempt"):
                slot = need.pop(0)
                rows[slot] = _row(slot, f"{source}/spare", pick, zs[j])
                taken.add(pick[1])
                stats["redrawn_spare"] += 1
                if not need:
                    break


def resolve_batch(
    z: torch.Tensor,
    spare: torch.Tensor | None,
    seed: int,
    source: str,
    known: set[str],
    cfg: BOConfig,
    decode_fn: DecodeFn,
    canonical_fn: CanonicalFn,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Decode the batch ``z`` and choose each row's molecule, re-drawing known ones.

    ``known``: canonical SMILES already in the history. Rows carry ``status`` ``new``,
    ``duplicate`` or ``invalid`` (not yet scored). The counts say how many proposals decoded to a
    known molecule or to nothing valid before re-drawing, and how many were re-drawn how.
    """
    stats = dict.fromkeys(REDRAW_STATS, 0)
    # Decode the whole batch with the iteration's seed so a resumed batch decodes identically.
    attempts = decode_fn(z.to(torch.float32), cfg.n_decode_attempts, seed)
    taken, rows = set(known), []
    for i in range(z.shape[0]):
        pick = _pick(attempts[i], canonical_fn, taken, others=cfg.redraw)
        kind = pick[3]
        stats["primary_invalid"] += kind == "invalid"
        stats["primary_duplicate"] += kind in ("attempt", "duplicate")
        stats["redrawn_attempt"] += kind == "attempt"
        rows.append(_row(i, f"{source}/attempt" if kind == "attempt" else source, pick, z[i]))
        if kind in ("new", "attempt"):
            taken.add(pick[1])
    if cfg.redraw and spare is not None and spare.shape[0]:
        _redraw_from_spares(rows, spare, seed, source, taken, cfg, decode_fn, canonical_fn, stats)
    return rows, stats


def given_batch(
    smiles: list[str],
    sources: list[str],
    z: torch.Tensor,
    known: set[str],
    canonical_fn: CanonicalFn,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Rows for a batch of molecules chosen as molecules (no decoding): each ``new``, or
    ``duplicate`` / ``invalid`` should one be known already or not parse (the proposer
    excludes both, so these are the record of a bug, not a cost)."""
    stats = dict.fromkeys(REDRAW_STATS, 0)
    taken, rows = set(known), []
    for i, (smi, src) in enumerate(zip(smiles, sources, strict=True)):
        can = canonical_fn(smi) or ""
        kind = "invalid" if not can else "duplicate" if can in taken else "new"
        stats["primary_invalid"] += kind == "invalid"
        stats["primary_duplicate"] += kind == "duplicate"
        taken.add(can)
        rows.append(_row(i, src, (smi, can, float(bool(can)), kind), z[i]))
    return rows, stats


def score_batch(
    z: torch.Tensor,
    pending: dict[str, Any],
    history: pd.DataFrame,
    cfg: BOConfig,
    decode_fn: DecodeFn,
    objective_fn: ObjectiveFn,
    canonical_fn: CanonicalFn,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Resolve the pending batch, then score its rows not yet in ``history``.

    Returns those rows and the batch's re-draw counts (of the whole batch, however much of it
    was recorded before a kill).
    """
    t = pending["iteration"]
    before = history[history["iteration"] < t] if len(history) else history
    known = {c for c in before.get("canonical", []) if c}
    spare = torch.tensor(pending.get("spare") or [], dtype=torch.float64).reshape(-1, z.shape[1])
    if pending.get("smiles") is not None:  # molecules chosen by the fingerprint GP
        resolved, stats = given_batch(pending["smiles"], pending["sources"], z, known,
                                      canonical_fn)  # fmt: skip
    else:
        resolved, stats = resolve_batch(z, spare, pending["seed"], pending["source"], known,
                                        cfg, decode_fn, canonical_fn)  # fmt: skip
    done = set(history.loc[history["iteration"] == t, "index"]) if len(history) else set()
    rows = [{"iteration": t, **r} for r in resolved if r["index"] not in done]
    # ``scores`` holds the rows of this batch appended before a kill too: a duplicate of a
    # molecule first seen earlier in the batch gets that row's score either way.
    scores, vectors = known_scores(history), known_vectors(history)
    to_score = [r["canonical"] for r in rows if r["status"] == "new"]
    m = cfg.n_objectives
    if to_score:
        values, status = objective_fn(to_score)
        arr = split_values(values, len(to_score), m)
        for can, vec, st in zip(to_score, arr, status, strict=True):
            # several objectives: a molecule is scored when every one of them is
            new_status = call_status(float(vec[0]) if np.isfinite(vec).all() else math.nan, st)
            scored = new_status in SCORED
            scores[can] = float(vec[0]) if scored else math.nan
            vectors[can] = [float(v) if scored else math.nan for v in vec]
            for r in rows:
                if r["canonical"] == can and r["status"] == "new":
                    r["score"], r["status"] = scores[can], new_status
    for r in rows:
        if r["status"] == "duplicate":
            r["score"] = scores[r["canonical"]]
        if m > 1 and r["canonical"] in vectors:
            r["scores"] = vectors[r["canonical"]]
    return rows, stats
