"""The initial design: a pool of data molecules scored and encoded once, and the rows drawn
from it (the best of the pool plus random others) that every campaign starts from.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from molvae.bo.config import BOConfig, CanonicalFn, EncodeFn, ObjectiveFn, iteration_seed
from molvae.bo.store import SCORED, CampaignStore, z_columns


def _build_pool(
    store: CampaignStore,
    cfg: BOConfig,
    init_smiles: list[str],
    encode_fn: EncodeFn,
    objective_fn: ObjectiveFn,
    canonical_fn: CanonicalFn,
) -> pd.DataFrame:
    """Score and encode ``init_pool`` random data molecules once (stored in ``pool.csv``)."""
    pool = store.read_pool()
    if pool is not None:
        return pool
    rng = np.random.default_rng(iteration_seed(cfg.seed, 0))
    seen: set[str] = set()
    decoded, cans = [], []
    for i in rng.permutation(len(init_smiles))[: cfg.init_pool]:
        can = canonical_fn(init_smiles[i])
        if can and can not in seen:
            seen.add(can)
            decoded.append(init_smiles[i])
            cans.append(can)
    if not cans:
        raise ValueError("none of the init_smiles is a valid molecule: no initial design")
    scores, status = objective_fn(cans)
    scores = np.where(np.isin(status, SCORED), np.asarray(scores, dtype=float), np.nan)
    z = encode_fn(cans).detach().to("cpu", torch.float64).numpy()
    pool = pd.DataFrame({"smiles": decoded, "canonical": cans, "score": scores, "status": status})
    pool = pd.concat([pool, pd.DataFrame(z, columns=z_columns(z.shape[1]))], axis=1)
    store.write_pool(pool)
    return pool


def _init_rows(pool: pd.DataFrame, cfg: BOConfig, dim: int) -> list[dict[str, Any]]:
    """The initial design: the ``init_top`` best of the pool plus random others, ``n_init``,
    all feasible; only when too few pool molecules satisfy the campaign's constraints, random
    infeasible ones fill the design (the GP learns where the constraints fail from them)."""
    zc = z_columns(dim)
    usable = np.isfinite(pool["score"]) & np.isfinite(pool[zc]).all(axis=1)
    elig = pool[usable & (pool["status"] == "ok")].sort_values("score", ascending=False,
                                                                 kind="stable")  # fmt: skip
    n_top = min(cfg.init_top, cfg.n_init, len(elig))
    rest = elig.iloc[n_top:]
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 0, 1]))
    pick = rng.permutation(len(rest))[: max(cfg.n_init - n_top, 0)]
    chosen = pd.concat([elig.iloc[:n_top], rest.iloc[np.sort(pick)]])
    missing = cfg.n_init - len(chosen)
    if missing > 0:
        bad = pool[usable & (pool["status"] == "infeasible")]
        chosen = pd.concat([chosen, bad.iloc[np.sort(rng.permutation(len(bad))[:missing])]])
    return [
        {
            "iteration": 0,
            "index": j,
            "source": "init",
            "smiles": r["smiles"],
            "canonical": r["canonical"],
            "score": float(r["score"]),
            "status": r["status"],
            "valid_fraction": 1.0,
            "z": r[zc].to_numpy(dtype=float),
        }
        for j, (_, r) in enumerate(chosen.iterrows())
    ]
