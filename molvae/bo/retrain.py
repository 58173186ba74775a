"""Weighted retraining in the campaign loop (Tripp, Daxberger and Hernández-Lobato, NeurIPS 2020).

Every ``retrain_every`` iterations, once an iteration is recorded and the campaign goes on, the
model is fine-tuned on the retraining set (`molvae.bo.retrain_data`) weighted by rank, through the
caller's `RetrainFn` (the loop never sees the model). Every valid molecule of the pool and the
history is then encoded by the new model; from then on the GP sees the molecules recorded so far
at those latents and the later proposals at their own z (proposed in the new space), the latent
box is taken from the pool's new latents (mean -/+ ``bound_std`` std, whatever ``bounds`` was: a
learned prior describes the first model's encoder, not the fine-tuned one's), and the trust region
starts afresh around the incumbent.

Files, in ``models/``: ``retrain_<k>.pt`` (model version k, a normal checkpoint) and
``latents_<k>.csv``, both written atomically before ``state.json`` records version k (its
``model_version`` and ``retrains``). A kill before that record redoes the step on resume: the
fine-tuning is seeded from (seed, iteration) and a saved model is loaded rather than trained
again, so the resumed campaign is the one that was never interrupted (a fine-tuning redone after a
kill repeats bit for bit on the same machine and thread count, as training does).
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from molvae.bo.campaign_run import CampaignRun, write_state
from molvae.bo.config import BOConfig
from molvae.bo.retrain_data import (
    RetrainedModel,
    latents_path,
    model_path,
    molecules_to_encode,
    pool_latents,
    rank_weights,
    read_latents,
    retraining_set,
    write_latents,
)
from molvae.bo.trust_region import TrustRegionState, latent_bounds


def fresh_region(cfg: BOConfig, dim: int, old: TrustRegionState | None = None) -> TrustRegionState:
    """A trust region at its initial length around the incumbent; one that replaces ``old``
    (after retraining) keeps its restart count and the molecules it was centred on."""
    tr = TrustRegionState(dim=dim, batch_size=cfg.batch_size, length=cfg.tr_length_init,
                          length_init=cfg.tr_length_init, length_min=cfg.tr_length_min,
                          length_max=cfg.tr_length_max,
                          success_tolerance=cfg.tr_success_tolerance,
                          waste_tolerance=cfg.tr_max_waste)  # fmt: skip
    if old is None:
        return tr
    return replace(tr, restarts=old.restarts, used_centers=old.used_centers)


def retrain_seed(seed: int, iteration: int) -> int:
    """Seed of the fine-tuning after ``iteration`` (apart from the iteration's own seeds)."""
    return int(np.random.SeedSequence([seed, iteration, 2]).generate_state(1)[0])


def retrain_due(run: CampaignRun, t: int) -> bool:
    """Whether the model is to be fine-tuned after iteration ``t`` (and has not been)."""
    every = run.cfg.retrain_every
    if run.kind != "bo" or not every or t < 1 or t % every:
        return False
    done = run.state.get("retrains", [])
    return not done or done[-1]["iteration"] < t


def _fit(run: CampaignRun, version: int, t: int) -> tuple[RetrainedModel, dict[str, Any]]:
    """Fine-tune (or load) model ``version`` on the data recorded up to iteration ``t``."""
    history = run.history[run.history["iteration"] <= t] if len(run.history) else run.history
    data = retraining_set(run.store.read_pool(), history)
    if not len(data):
        raise ValueError("weighted retraining needs scored molecules; none was scored ok")
    weights = rank_weights(data["score"].to_numpy(dtype=float), run.cfg.retrain_k)
    path = model_path(run.store.dir, version)
    start = model_path(run.store.dir, version - 1) if version > 1 else None
    seed = retrain_seed(run.cfg.seed, t)
    t0 = time.perf_counter()
    model = run.fns.retrain_fn(path, start, list(data["canonical"]), weights, seed)
    rec = {"version": version, "iteration": t, "model": str(path.relative_to(run.store.dir)),
           "n_train": len(data), "seed": seed, "train_s": time.perf_counter() - t0}  # fmt: skip
    return model, rec


def _latents(run: CampaignRun, version: int, model: RetrainedModel) -> tuple[pd.DataFrame, dict]:
    """Every valid molecule's latents in model ``version`` (read back when already written)."""
    path = latents_path(run.store.dir, version)
    t0 = time.perf_counter()
    if not path.exists():
        cans = molecules_to_encode(run.store.read_pool(), run.history)
        z = model.encode_fn(cans).detach().to("cpu", torch.float64).numpy()
        if z.shape[1] != run.dim:
            raise ValueError(f"the retrained model has {z.shape[1]} latent dims, not {run.dim}")
        write_latents(path, cans, z)
    latents = read_latents(path)
    n_bad = int((~np.isfinite(latents.iloc[:, 1:].to_numpy(dtype=float)).all(axis=1)).sum())
    return latents, {"n_encoded": len(latents), "n_not_encoded": n_bad,
                     "encode_s": time.perf_counter() - t0}  # fmt: skip


def _apply(run: CampaignRun, model: RetrainedModel, latents: pd.DataFrame, t: int) -> None:
    """Go on in the new model's space: its callables, the molecules' latents, the latent box."""
    run.fns.decode_fn, run.fns.encode_fn = model.decode_fn, model.encode_fn
    if model.prior_fn is not None:
        run.fns.prior_fn = model.prior_fn
    run.latents, run.since = latents, t
    z = torch.tensor(pool_latents(run.store.read_pool(), latents, run.dim))
    run.bounds = latent_bounds(z, run.cfg.bound_std)


def retrain(run: CampaignRun, t: int) -> None:
    """Fine-tune after iteration ``t``, re-encode, move the GP to the new space, reset the trust
    region, and record the new version in ``state.json``."""
    version = run.state.get("model_version", 0) + 1
    model, rec = _fit(run, version, t)
    latents, enc = _latents(run, version, model)
    _apply(run, model, latents, t)
    if run.tr is not None:
        run.tr = fresh_region(run.cfg, run.dim, run.tr)
    run.state = {**run.state, "model_version": version,
                 "retrains": [*run.state.get("retrains", []), {**rec, **enc}],
                 "trust_region": asdict(run.tr) if run.tr else None}  # fmt: skip
    write_state(run.store, run.state, run.history, run.cfg)


def restore_model(run: CampaignRun) -> None:
    """On resume: go on with the model version ``state.json`` records (loaded, not retrained)."""
    version = run.state.get("model_version", 0)
    if not version:
        return
    if run.fns.retrain_fn is None:
        raise ValueError(f"{run.store.dir} was retrained: resuming it needs a retrain_fn")
    t = run.state["retrains"][-1]["iteration"]
    model, _ = _fit(run, version, t)
    _apply(run, model, read_latents(latents_path(run.store.dir, version)), t)
