"""One iteration of a campaign: propose a batch (or take the one a kill interrupted), decode and
score it, record it in ``state.json``.

The functions share a `molvae.bo.campaign_run.CampaignRun`, what the loop carries from one
iteration to the next.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd
import torch

from molvae.bo.acquisition import Proposal, propose_batch
from molvae.bo.campaign_run import CampaignRun, as_latents, write_state
from molvae.bo.candidates import propose_from_history
from molvae.bo.config import (
    iteration_seed,
)
from molvae.bo.mo_acquisition import propose_batch_mo
from molvae.bo.multi_objective import propose_pareto_molecules
from molvae.bo.observations import observations, observed_rows
from molvae.bo.pareto import hypervolume, infer_ref_point, objective_matrix, ok_points, pareto_mask
from molvae.bo.regions import region_best, region_center, restart_region
from molvae.bo.scoring import score_batch
from molvae.bo.store import STATUSES, best_of
from molvae.bo.trust_region import update_trust_region


def _slacks(run: CampaignRun, history: pd.DataFrame, feasible: torch.Tensor) -> torch.Tensor | None:
    """``n x m`` constraint slacks of the rows `observations` returned (computed once per
    molecule), or None where one binary GP models feasibility: no ``slack_fn``,
    ``constraint_model="binary"``, or nothing missed yet."""
    fn = run.fns.slack_fn
    if fn is None or run.cfg.constraint_model != "slack" or bool(feasible.all()):
        return None
    canon = history.loc[observed_rows(history, run.dim), "canonical"].astype(str).tolist()
    new = [c for c in dict.fromkeys(canon) if c not in run.slacks]
    if new:
        run.slacks.update(zip(new, np.asarray(fn(new), dtype=float), strict=True))
    slack = torch.tensor(np.stack([run.slacks[c] for c in canon]), dtype=torch.float64)
    # a molecule infeasible with every slack met missed an expensive constraint (docking),
    # which only its oracle call checks: one more output, +1 where that happened, -1 elsewhere
    hidden = ~feasible & (slack <= 0).all(-1)
    if hidden.any():
        slack = torch.cat([slack, torch.where(hidden, 1.0, -1.0).to(slack).unsqueeze(-1)], -1)
    return slack


def propose(
    run: CampaignRun,
    t: int,
    q: int,
    start: float,
    in_flight: Sequence[str] = (),
    z_in_flight: torch.Tensor | None = None,
    persist: bool = True,
) -> dict[str, Any]:
    """Propose the ``q`` z of iteration ``t`` and persist them (``pending.json``, unless not
    ``persist``) before any is decoded; ``start`` is when the iteration began (``propose_s``).
    ``in_flight`` / ``z_in_flight``: the molecules and latents (``p x d``) of the proposals
    whose oracle calls are still running (asynchronous BO), which the proposal is conditioned
    on."""
    cfg, seed_t = run.cfg, iteration_seed(run.cfg.seed, t)
    if run.kind == "bo" and cfg.surrogate == "fingerprint":
        pending = _propose_molecules(run, t, q, seed_t, start, in_flight, persist)
        if pending is not None:
            return pending
    n_spare = cfg.spares_per_proposal * q if cfg.redraw and cfg.redraw_rounds else 0
    if run.kind == "bo" and cfg.n_objectives > 1:
        prop = _latent_pareto(run, q, seed_t, n_spare, z_in_flight)
    elif run.kind == "bo":
        if run.bounds is None:
            raise ValueError("run_campaign needs init_smiles to set the latent bounds")
        history = run.gp_history()
        x, y, feasible = observations(history, run.dim)
        center = region_center(history, run.tr, run.dim)
        prop = propose_batch(cfg, x, y, run.bounds, q, seed_t, run.tr.length if run.tr else None,
                             center=center, n_spare=n_spare, spare_rounds=cfg.redraw_rounds,
                             feasible=feasible, slack=_slacks(run, history, feasible),
                             x_pending=z_in_flight)  # fmt: skip
    else:
        prop = Proposal(z=as_latents(run.fns.prior_fn(q, seed_t)), source="random")
        if n_spare:
            n_all = n_spare * cfg.redraw_rounds
            prop.spare = as_latents(run.fns.prior_fn(n_all, iteration_seed(seed_t, 1)))
    rec = {"source": prop.source, "fallback": prop.fallback, "gp_points": prop.gp_points,
           **({"constraint_gps": prop.constraint_gps} if prop.constraint_gps else {}),
           "fit_s": prop.fit_s, "acq_s": prop.acq_s,
           "propose_s": time.perf_counter() - start,
           **({"model_version": run.state.get("model_version", 0)}
              if cfg.retrain_every else {})}  # fmt: skip
    pending = {"iteration": t, "seed": seed_t, "source": prop.source, "z": prop.z.tolist(),
               "spare": [] if prop.spare is None else prop.spare.tolist(),
               "record": rec}  # fmt: skip
    if persist:
        run.store.write_pending(pending)
    return pending


def _propose_molecules(
    run: CampaignRun, t: int, q: int, seed: int, start: float, in_flight: Sequence[str] = (),
    persist: bool = True,
) -> dict[str, Any] | None:  # fmt: skip
    """The fingerprint GP's batch of molecules (`molvae.bo.candidates`), persisted with their
    SMILES so a resumed batch scores the same molecules; None when it has nothing to propose
    (nothing scored yet, no new candidate): the latent GP proposes that batch."""
    fns, cfg = run.fns, run.cfg
    if cfg.n_objectives > 1:
        ref = campaign_ref_point(run)
        mo = None if ref is None else propose_pareto_molecules(
            run.history, q, seed, cfg, ref, fns.canonical_fn, fns.decode_fn, fns.encode_fn,
            fns.slack_fn, in_flight)  # fmt: skip
        z = None if mo is None or fns.encode_fn is None else fns.encode_fn(mo.smiles)
        out = None if z is None else (mo, z.detach().to("cpu", torch.float64))
    else:
        out = propose_from_history(run.history, q, seed, cfg, fns.canonical_fn, fns.decode_fn,
                                   fns.encode_fn, fns.slack_fn, in_flight, run.reuse,
                                   fns.known_fn)  # fmt: skip
    if out is None:
        return None
    prop, z = out
    source = "fp-nehvi" if cfg.n_objectives > 1 else "fp-ts"
    rec = {"source": source, "fallback": None, "gp_points": prop.gp_points,
           "candidates": prop.n_candidates, "fit_s": prop.fit_s, "acq_s": prop.acq_s,
           **({"known_part": True} if prop.known_part else {}),
           "propose_s": time.perf_counter() - start,
           **({"model_version": run.state.get("model_version", 0)}
              if run.cfg.retrain_every else {})}  # fmt: skip
    pending = {"iteration": t, "seed": seed, "source": source, "z": z.tolist(),
               "smiles": prop.smiles, "sources": prop.sources, "spare": [],
               "record": rec}  # fmt: skip
    if persist:
        run.store.write_pending(pending)
    return pending


def campaign_ref_point(run: CampaignRun) -> list[float] | None:
    """The hypervolume's reference point of a multi-objective campaign: the stored one, the
    configured one, else inferred from the initial design's molecules scored ok (from every
    molecule while those are none; None while nothing is). Kept in ``run.state``."""
    ref = run.state.get("ref_point") or run.cfg.ref_point
    if ref is None:
        h = run.history
        y, _ = ok_points(h[h["iteration"] == 0] if len(h) else h)
        y = y if len(y) else ok_points(h)[0]
        ref = infer_ref_point(y) if len(y) else None
    if ref is not None:
        run.state["ref_point"] = [float(v) for v in ref]
    return ref


def _latent_pareto(
    run: CampaignRun, q: int, seed: int, n_spare: int, z_in_flight: torch.Tensor | None
) -> Proposal:
    """The latent GPs' batch for several objectives (`molvae.bo.mo_acquisition`)."""
    if run.bounds is None:
        raise ValueError("run_campaign needs init_smiles to set the latent bounds")
    history = run.gp_history()
    x, _, feasible = observations(history, run.dim)
    y = torch.as_tensor(objective_matrix(history)[observed_rows(history, run.dim).to_numpy()])
    ref = campaign_ref_point(run)
    if ref is None:
        ref = [float("-inf")] * run.cfg.n_objectives  # falls back: nothing scored ok yet
        feasible = torch.zeros(len(y), dtype=torch.bool)
    return propose_batch_mo(run.cfg, x, y, run.bounds, q, seed, ref,
                            run.tr.length if run.tr else None, n_spare, run.cfg.redraw_rounds,
                            feasible, _slacks(run, history, feasible), z_in_flight)  # fmt: skip


def run_batch(run: CampaignRun, t: int, pending: dict[str, Any]) -> None:
    """Decode and score the rows of the pending batch still missing, then record iteration ``t``."""
    t_eval = time.perf_counter()  # propose_s is already in the record (or was, before a kill)
    z = torch.tensor(pending["z"], dtype=torch.float64)
    run.dim = z.shape[1]
    fns = run.fns
    rows, stats = score_batch(z, pending, run.history, run.cfg, fns.decode_fn,
                               fns.objective_fn, fns.canonical_fn)  # fmt: skip
    if rows:
        run.store.append_rows(rows, run.dim)
        run.history = run.store.load_history()
    record_iteration(run, t, pending, stats, t_eval)


def _update_region(run: CampaignRun, t: int, batch_best: float, waste: float) -> dict[str, Any]:
    """Update the trust region after batch ``t`` (restarting it elsewhere when it collapsed);
    the iteration record's trust-region fields."""
    tr = run.tr
    if tr is None:
        return {"tr_length": None}
    ref = region_best(run.history, tr, t)
    if run.cfg.n_objectives > 1:  # a success grows the hypervolume (MORBO)
        batch_best, ref = _hypervolumes(run, t)
    new = update_trust_region(tr, batch_best, ref, waste)
    note = None
    if new.restarts > tr.restarts:
        new, note = restart_region(new, run.gp_history(), t, run.dim)
    run.tr = new
    return {"tr_length": new.length, "tr_restarted": note is not None, "tr_restart": note,
            "tr_restarts": new.restarts, "tr_center": new.center_smiles}  # fmt: skip


def _hypervolumes(run: CampaignRun, t: int) -> tuple[float, float]:
    """The campaign's hypervolume with and without iteration ``t``'s rows (NaN without a
    reference point)."""
    ref, h = run.state.get("ref_point"), run.history
    if ref is None or h.empty:
        return math.nan, math.nan
    return (hypervolume(ok_points(h[h["iteration"] <= t])[0], ref),
            hypervolume(ok_points(h[h["iteration"] < t])[0], ref))  # fmt: skip


def _batch_counts(batch: pd.DataFrame, stats: dict[str, int]) -> dict[str, Any]:
    """Per-status counts and rates of a recorded batch, and its re-draw counts."""
    counts = batch["status"].value_counts()
    q = max(len(batch), 1)
    n_new = int(((batch["canonical"] != "") & (batch["status"] != "duplicate")).sum())
    return {"q": len(batch), **{f"n_{s}": int(counts.get(s, 0)) for s in STATUSES},
            "n_new": n_new, "new_rate": n_new / q,
            "duplicate_rate": int(counts.get("duplicate", 0)) / q,
            "invalid_rate": int(counts.get("invalid", 0)) / q,
            "validity": float((batch["canonical"] != "").mean()), **stats,
            "waste": (stats["primary_duplicate"] + stats["primary_invalid"]) / q}  # fmt: skip


def record_iteration(
    run: CampaignRun,
    t: int,
    pending: dict[str, Any],
    stats: dict[str, int],
    t_eval: float,
    extra: dict[str, Any] | None = None,
) -> None:
    """Update the trust region, write ``state.json`` with the iteration's record (plus
    ``extra`` fields), drop ``pending.json``. ``state["iteration"]`` is the highest iteration
    recorded (asynchronous BO records them in the order their calls finish)."""
    history = run.history
    batch = history[history["iteration"] == t]
    ok_scores = batch.loc[batch["status"] == "ok", "score"].to_numpy(dtype=float)
    batch_best = float(np.nanmax(ok_scores)) if np.isfinite(ok_scores).any() else math.nan
    counts = _batch_counts(batch, stats)
    region = _update_region(run, t, batch_best, counts["waste"])
    best, _ = best_of(history)
    if run.cfg.n_objectives > 1 and run.kind != "gradient":
        campaign_ref_point(run)
        y, _ = ok_points(history)
        ref = run.state.get("ref_point")
        region["hypervolume"] = math.nan if ref is None else hypervolume(y, ref)
        region["pareto_size"] = int(pareto_mask(y).sum())
    rec = {**pending["record"], "iteration": t, **counts, "batch_best": batch_best,
           "best": best, **region,
           "wall_s": pending["record"]["propose_s"] + time.perf_counter() - t_eval,
           **(extra or {})}  # fmt: skip
    last = max(t, run.state.get("iteration", 0))
    run.state = {**run.state, "iteration": last, "iterations": [*run.state["iterations"], rec],
                 "trust_region": asdict(run.tr) if run.tr else None}  # fmt: skip
    write_state(run.store, run.state, history, run.cfg)
    run.store.clear_pending()
