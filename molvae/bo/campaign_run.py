"""A running campaign's state: the callables it reaches the model and the chemistry through,
what it carries from one iteration to the next, and ``state.json`` and ``pending.json`` as it
reads and writes them. The loop, the iteration, retraining and gradient campaigns share it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from molvae.bo.accounting import SCORED, oracle_calls
from molvae.bo.candidate_reuse import CandidateReuse
from molvae.bo.config import (
    BOConfig,
    CanonicalFn,
    DecodeFn,
    EncodeFn,
    KnownFn,
    ObjectiveFn,
    SampleFn,
    SlackFn,
)
from molvae.bo.pareto import front_summary
from molvae.bo.retrain_data import RetrainFn, in_latent_space
from molvae.bo.store import STATUSES, CampaignStore, best_of
from molvae.bo.trust_region import TrustRegionState


@dataclass
class Oracles:
    """The callables a campaign reaches the model and the chemistry through."""

    decode_fn: DecodeFn
    objective_fn: ObjectiveFn
    canonical_fn: CanonicalFn | None  # None: molvae.chem's, filled in by _start
    encode_fn: EncodeFn | None = None
    prior_fn: SampleFn | None = None
    retrain_fn: RetrainFn | None = None  # weighted retraining (`molvae.bo.retrain`)
    slack_fn: SlackFn | None = None  # constraint slacks, for one GP per constraint
    known_fn: KnownFn | None = None  # the objective's exactly known part (`BOConfig.known_part`)


@dataclass
class CampaignRun:
    """What a running campaign carries from one iteration to the next."""

    kind: str  # "bo" or "random"
    cfg: BOConfig
    store: CampaignStore
    fns: Oracles
    history: pd.DataFrame
    state: dict[str, Any]
    bounds: torch.Tensor | None = None  # 2 x d latent box, set by the initial design
    dim: int | None = None
    tr: TrustRegionState | None = None
    # after weighted retraining: every molecule's latents in the current model (canonical, z..),
    # and the iteration it was retrained after (rows up to it are seen at these latents)
    latents: pd.DataFrame | None = None
    since: int = 0
    slacks: dict[str, np.ndarray] = field(default_factory=dict)  # canonical -> slack_fn row
    # asynchronous BO keeps the fingerprint GP's candidates across its small proposals
    reuse: CandidateReuse | None = None

    def gp_history(self) -> pd.DataFrame:
        """The history with every row's z in the current model's latent space."""
        return in_latent_space(self.history, self.latents, self.since, self.dim)


def as_latents(z: Any) -> torch.Tensor:
    """A ``SampleFn``'s samples (numpy array or tensor, ``n x d``) as a float64 CPU tensor."""
    if isinstance(z, torch.Tensor):
        return z.detach().to("cpu", torch.float64)
    return torch.as_tensor(np.asarray(z, dtype=np.float64))


def pending_batch(store: CampaignStore, t: int) -> dict[str, Any] | None:
    """The persisted batch of iteration ``t`` (a kill interrupted it), or None."""
    pending = store.read_pending()
    if pending is not None and pending["iteration"] != t:
        store.clear_pending()  # state.json already records that batch
        pending = None
    return pending


def write_state(
    store: CampaignStore, state: dict[str, Any], history: pd.DataFrame, cfg: BOConfig
) -> None:
    """Rewrite ``state.json``: ``state`` plus the best molecule, counts, the oracle calls spent
    of the budget, and GP fallbacks."""
    best, best_smiles = best_of(history)
    counts = history["status"].value_counts() if len(history) else pd.Series(dtype=int)
    new = history[history["iteration"] > 0] if len(history) else history
    store.write_state({
        **state,
        "best_score": best,
        "best_smiles": best_smiles,
        "counts": {s: int(counts.get(s, 0)) for s in STATUSES},
        "oracle_calls": oracle_calls(history, cfg.free_pool),
        "budget": cfg.budget,
        # proposals scored ok or infeasible: what the budget counted before the pool was charged
        "n_scored_new": int(new["status"].isin(SCORED).sum()) if len(new) else 0,
        **(front_summary(history, state.get("ref_point")) if cfg.n_objectives > 1 else {}),
        "gp_fallbacks": [
            {"iteration": r["iteration"], "fallback": r["fallback"]}
            for r in state["iterations"]
            if r.get("fallback")
        ],
    })  # fmt: skip
