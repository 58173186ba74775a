"""One iteration of a campaign: propose a batch (or take the one a kill interrupted), decode and
score it, record it in ``state.json``.

The functions share a ``_Run``, what the loop carries from one iteration to the next.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from molvae.bo.acquisition import Proposal, propose_batch
from molvae.bo.config import (
    BOConfig,
    CanonicalFn,
    DecodeFn,
    EncodeFn,
    ObjectiveFn,
    PriorFn,
    iteration_seed,
)
from molvae.bo.scoring import _score_batch
from molvae.bo.store import STATUSES, CampaignStore, best_of, observations
from molvae.bo.trust_region import TrustRegionState, update_trust_region


@dataclass
class _Oracles:
    """The callables a campaign reaches the model and the chemistry through."""

    decode_fn: DecodeFn
    objective_fn: ObjectiveFn
    canonical_fn: CanonicalFn | None  # None: molvae.chem's, filled in by _start
    encode_fn: EncodeFn | None = None
    prior_fn: PriorFn | None = None


@dataclass
class _Run:
    """What a running campaign carries from one iteration to the next."""

    kind: str  # "bo" or "random"
    cfg: BOConfig
    store: CampaignStore
    fns: _Oracles
    history: pd.DataFrame
    state: dict[str, Any]
    bounds: torch.Tensor | None = None  # 2 x d latent box, set by the initial design
    dim: int | None = None
    tr: TrustRegionState | None = None


def _pending_batch(store: CampaignStore, t: int) -> dict[str, Any] | None:
    """The persisted batch of iteration ``t`` (a kill interrupted it), or None."""
    pending = store.read_pending()
    if pending is not None and pending["iteration"] != t:
        store.clear_pending()  # state.json already records that batch
        pending = None
    return pending


def _n_scored_new(history: pd.DataFrame) -> int:
    """Proposals (after the initial design) scored ok: what the budget counts."""
    if not len(history):
        return 0
    return int(((history["iteration"] > 0) & (history["status"] == "ok")).sum())


def _propose(run: _Run, t: int, q: int, start: float) -> dict[str, Any]:
    """Propose the ``q`` z of iteration ``t`` and persist them (``pending.json``) before any is
    decoded; ``start`` is when the iteration began (for ``propose_s``)."""
    cfg, seed_t = run.cfg, iteration_seed(run.cfg.seed, t)
    if run.kind == "bo":
        if run.bounds is None:
            raise ValueError("run_campaign needs init_smiles to set the latent bounds")
        x, y = observations(run.history, run.dim)
        prop = propose_batch(cfg, x, y, run.bounds, q, seed_t, run.tr.length if run.tr else None)
    else:
        z = run.fns.prior_fn(q, seed_t).detach().to("cpu", torch.float64)
        prop = Proposal(z=z, source="random")
    rec = {"source": prop.source, "fallback": prop.fallback, "gp_points": prop.gp_points,
           "fit_s": prop.fit_s, "acq_s": prop.acq_s,
           "propose_s": time.perf_counter() - start}  # fmt: skip
    pending = {"iteration": t, "seed": seed_t, "source": prop.source,
               "z": prop.z.tolist(), "record": rec}  # fmt: skip
    run.store.write_pending(pending)
    return pending


def _best_before_batch(history: pd.DataFrame, t: int) -> float:
    """The incumbent the trust region compares batch ``t``'s best with (the only place it is
    taken): the best over the rows of iterations before ``t``.

    Not over all of ``history``: after a kill mid-batch it already holds the rows of batch ``t``
    appended before the kill, and counting them as "before" would turn an improving batch into a
    failure, so a resumed campaign would carry another trust region than an uninterrupted one.
    """
    best_before, _ = best_of(history[history["iteration"] < t] if len(history) else history)
    return best_before


def _run_batch(run: _Run, t: int, pending: dict[str, Any]) -> None:
    """Decode and score the rows of the pending batch still missing, then record iteration ``t``."""
    t_eval = time.perf_counter()  # propose_s is already in the record (or was, before a kill)
    z = torch.tensor(pending["z"], dtype=torch.float64)
    run.dim = z.shape[1]
    best_before = _best_before_batch(run.history, t)
    fns = run.fns
    rows = _score_batch(z, pending, run.history, run.cfg, fns.decode_fn, fns.objective_fn,
                        fns.canonical_fn)  # fmt: skip
    if rows:
        run.store.append_rows(rows, run.dim)
        run.history = run.store.load_history()
    _record_iteration(run, t, pending, best_before, t_eval)


def _record_iteration(
    run: _Run, t: int, pending: dict[str, Any], best_before: float, t_eval: float
) -> None:
    """Update the trust region, write ``state.json`` with the iteration's record, drop
    ``pending.json``."""
    history, tr = run.history, run.tr
    batch = history[history["iteration"] == t]
    counts = batch["status"].value_counts()
    ok_scores = batch.loc[batch["status"] == "ok", "score"].to_numpy(dtype=float)
    batch_best = float(np.nanmax(ok_scores)) if np.isfinite(ok_scores).any() else math.nan
    if tr is not None:
        run.tr = tr = update_trust_region(tr, batch_best, best_before)
    best, _ = best_of(history)
    rec = {**pending["record"], "iteration": t, "q": len(batch),
           **{f"n_{s}": int(counts.get(s, 0)) for s in STATUSES},
           "validity": float((batch["canonical"] != "").mean()), "batch_best": batch_best,
           "best": best, "tr_length": tr.length if tr else None,
           "wall_s": pending["record"]["propose_s"] + time.perf_counter() - t_eval}  # fmt: skip
    run.state = {**run.state, "iteration": t, "iterations": [*run.state["iterations"], rec],
                 "trust_region": asdict(tr) if tr else None}  # fmt: skip
    _write_state(run.store, run.state, history)
    run.store.clear_pending()


def _write_state(store: CampaignStore, state: dict[str, Any], history: pd.DataFrame) -> None:
    """Rewrite ``state.json``: ``state`` plus the best molecule, counts and GP fallbacks."""
    best, best_smiles = best_of(history)
    counts = history["status"].value_counts() if len(history) else pd.Series(dtype=int)
    new = history[history["iteration"] > 0] if len(history) else history
    store.write_state({
        **state,
        "best_score": best,
        "best_smiles": best_smiles,
        "counts": {s: int(counts.get(s, 0)) for s in STATUSES},
        "n_scored_new": int((new["status"] == "ok").sum()) if len(new) else 0,
        "gp_fallbacks": [
            {"iteration": r["iteration"], "fallback": r["fallback"]}
            for r in state["iterations"]
            if r.get("fallback")
        ],
    })  # fmt: skip
