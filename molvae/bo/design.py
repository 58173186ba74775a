"""The initial design every campaign starts from, all of it at iteration 0: the caller's init data
(molecules already measured, source ``"data"``, free), then a pool of data molecules scored and
encoded once (source ``"init"``).

With the pool charged to the budget (the default) every scored pool molecule is in the design;
with ``free_pool`` (Kusner's protocol) its ``init_top`` best plus random others, ``n_init`` in all.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from molvae.bo.accounting import SCORED, call_status
from molvae.bo.campaign_run import CampaignRun, as_latents
from molvae.bo.config import BOConfig, CanonicalFn, EncodeFn, ObjectiveFn, iteration_seed
from molvae.bo.init_data import data_rows
from molvae.bo.pareto import score_columns, split_values
from molvae.bo.store import CampaignStore, z_columns
from molvae.bo.trust_region import latent_bounds, prior_bounds

_PRIOR_SAMPLES = 10_000  # prior samples the latent box is taken from (bounds="prior")

# A charged pool is small (100 at most by default): the latent box (bounds="data") would rest
# on a few points, so this many data molecules are encoded for it (encoding is free), unscored.
BOX_MOLECULES = 200
UNSCORED = "unscored"  # pool.csv status of a molecule encoded only for the latent box


def _score_pool(
    smiles: list[str], objective_fn: ObjectiveFn, m: int
) -> tuple[np.ndarray, list[str]]:
    """The pool's objective values (``n x m``, NaN unless scored) and statuses."""
    if not smiles:
        return np.zeros((0, m)), []
    values, answers = objective_fn(smiles)
    vectors = split_values(values, len(smiles), m)
    # several objectives: a molecule is scored when every one of them is
    first = np.where(np.isfinite(vectors).all(axis=1), vectors[:, 0], np.nan)
    status = [call_status(s, st) for s, st in zip(first, answers, strict=True)]
    return np.where(np.isin(status, SCORED)[:, None], vectors, np.nan), status


def _build_pool(
    store: CampaignStore,
    cfg: BOConfig,
    init_smiles: list[str],
    encode_fn: EncodeFn,
    objective_fn: ObjectiveFn,
    canonical_fn: CanonicalFn,
    exclude: set[str] | None = None,
) -> pd.DataFrame:
    """Score and encode ``init_pool`` random data molecules once (stored in ``pool.csv``).

    ``exclude``: canonical SMILES already measured (init data), never scored again. A charged
    pool takes the first ``init_pool`` valid new molecules of a seeded permutation and encodes
    up to ``BOX_MOLECULES`` in all (the others with status ``unscored``); a free pool, as
    campaigns before the pool was charged, scores the valid ones among the first ``init_pool``.
    """
    pool = store.read_pool()
    if pool is not None:
        return pool
    exclude = exclude or set()
    rng = np.random.default_rng(iteration_seed(cfg.seed, 0))
    order = rng.permutation(len(init_smiles))
    n_pool = int(cfg.init_pool or 0)
    n_all = n_pool
    if cfg.free_pool:
        order = order[:n_pool]
    else:
        n_all = max(n_pool, BOX_MOLECULES)
    seen: set[str] = set()
    scored: list[tuple[str, str]] = []  # (as written, canonical)
    box: list[tuple[str, str]] = []
    for i in order:
        if len(scored) >= n_pool and len(scored) + len(box) >= n_all:
            break
        can = canonical_fn(init_smiles[i])
        if not can or can in seen:
            continue
        seen.add(can)
        if len(scored) < n_pool and can not in exclude:
            scored.append((init_smiles[i], can))
        elif len(scored) + len(box) < n_all:
            box.append((init_smiles[i], can))
    if not scored and not box:
        raise ValueError("none of the init_smiles is a valid molecule: no initial design")
    m = cfg.n_objectives
    vectors, status = _score_pool([c for _, c in scored], objective_fn, m)
    rows = scored + box
    z = encode_fn([c for _, c in rows]).detach().to("cpu", torch.float64).numpy()
    vectors = np.concatenate([vectors, np.full((len(box), m), np.nan)])
    pool = pd.DataFrame({"smiles": [s for s, _ in rows], "canonical": [c for _, c in rows],
                         "score": vectors[:, 0],
                         "status": status + [UNSCORED] * len(box)})  # fmt: skip
    for i, col in enumerate(score_columns(m)):
        pool[col] = vectors[:, i]
    pool = pd.concat([pool, pd.DataFrame(z, columns=z_columns(z.shape[1]))], axis=1)
    store.write_pool(pool)
    return pool


def _init_rows(pool: pd.DataFrame, cfg: BOConfig, dim: int, start: int = 0) -> list[dict[str, Any]]:
    """The pool's rows of the initial design, indexed from ``start``.

    A charged pool: every molecule scored (its calls were paid for), failed ones and ones that
    could not be encoded (NaN z) included. ``free_pool``: the ``init_top`` best of the pool
    plus random others, ``n_init``, all feasible; only when too few pool molecules satisfy the
    campaign's constraints, random infeasible ones fill the design (the GP learns where the
    constraints fail from them)."""
    zc = z_columns(dim)
    if not cfg.free_pool:
        chosen = pool[pool["status"] != UNSCORED]
    else:
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
            "index": start + j,
            "source": "init",
            "smiles": r["smiles"],
            "canonical": r["canonical"],
            "score": float(r["score"]),
            "scores": [float(r[c]) for c in score_columns(cfg.n_objectives)] or None,
            "status": r["status"],
            "valid_fraction": 1.0,
            "z": r[zc].to_numpy(dtype=float),
        }
        for j, (_, r) in enumerate(chosen.iterrows())
    ]


def initial_design(
    run: CampaignRun, init_smiles: list[str] | None, data: pd.DataFrame | None
) -> None:
    """Encode the init data, score and encode the pool (once), set the latent bounds, append
    the missing iteration-0 rows: the init data's, then the pool's."""
    cfg, fns = run.cfg, run.fns
    if fns.encode_fn is None:
        raise ValueError("an initial design (init_smiles or init_data) needs encode_fn")
    given_rows = [] if data is None else data_rows(data, fns.canonical_fn, fns.encode_fn,
                                                   fns.slack_fn)  # fmt: skip
    pool = None
    if init_smiles is not None:
        measured = {r["canonical"] for r in given_rows}  # never scored again
        pool = _build_pool(run.store, cfg, init_smiles, fns.encode_fn, fns.objective_fn,
                           fns.canonical_fn, measured)  # fmt: skip
        run.dim = sum(c.startswith("z") and c[1:].isdigit() for c in pool.columns)
    elif given_rows:
        run.dim = len(given_rows[0]["z"])
    if run.dim is None:
        raise ValueError("no molecule of the init data is valid: no initial design")
    dim = run.dim
    if cfg.bounds == "prior":
        if fns.prior_fn is None:
            raise ValueError("bounds='prior' needs a prior_fn (samples of the model's prior)")
        samples = as_latents(fns.prior_fn(_PRIOR_SAMPLES, iteration_seed(cfg.seed, 0)))
        run.bounds = prior_bounds(samples, cfg.bound_quantile)
    else:  # the data's region: every encoded pool molecule (the box ones too), else the init data
        z = (pool[z_columns(dim)].to_numpy(dtype=float) if pool is not None
             else np.array([r["z"] for r in given_rows]))  # fmt: skip
        run.bounds = latent_bounds(torch.tensor(z), cfg.bound_std)
    history = run.history
    done = set(history.loc[history["iteration"] == 0, "index"]) if len(history) else set()
    design = given_rows + ([] if pool is None else _init_rows(pool, cfg, dim, len(given_rows)))
    rows = [r for r in design if r["index"] not in done]
    if rows:
        run.store.append_rows(rows, dim)
        run.history = run.store.load_history()
