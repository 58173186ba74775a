"""The campaign loop: initial design, BO (or random) batches, decoding, scoring, resume.

Crash safety: a batch's z are persisted (``pending.json``) before any of it is decoded; each
finished row is appended and fsynced; ``state.json`` is rewritten atomically at the end of an
iteration. Seeds derive from (seed, iteration), so a resumed campaign finishes the pending batch
and proposes exactly what the uninterrupted one would have.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, replace
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from molvae.bo.chemistry import default_canonical
from molvae.bo.config import (
    BOConfig,
    CanonicalFn,
    DecodeFn,
    EncodeFn,
    ObjectiveFn,
    SampleFn,
    SlackFn,
    iteration_seed,
)
from molvae.bo.design import _build_pool, _init_rows
from molvae.bo.iteration import (
    _n_scored_new,
    _Oracles,
    _pending_batch,
    _propose,
    _Run,
    _run_batch,
    _write_state,
    as_latents,
)
from molvae.bo.report import write_report
from molvae.bo.retrain import fresh_region, restore_model, retrain, retrain_due
from molvae.bo.retrain_data import RetrainFn
from molvae.bo.stopping import stop_reason
from molvae.bo.store import (
    SCORED,
    CampaignResult,
    CampaignStore,
    load_campaign,
    z_columns,
)
from molvae.bo.trust_region import TrustRegionState, latent_bounds, prior_bounds

# Config fields that may change on resume: they alter neither proposals nor records.
_FREE_FIELDS = ("budget", "max_iterations", "n_jobs", "top_k")
_PRIOR_SAMPLES = 10_000  # prior samples the latent box is taken from (bounds="prior")


def _check_config(
    store: CampaignStore, kind: str, cfg: BOConfig, metadata: dict | None
) -> BOConfig:
    """Record a new directory's settings; refuse to resume one started with other settings.
    Returns the settings to run with: ``cfg``, but a directory from before constraint GPs on
    slacks goes on with the binary GP it started with."""
    stored = store.read_config()
    if stored is None:
        store.write_config({"kind": kind, "config": asdict(cfg), "metadata": metadata or {}})
        return cfg
    old = stored.get("config", {})
    if "constraint_model" not in old:
        cfg = replace(cfg, constraint_model="binary")
    new = asdict(cfg)
    if stored.get("kind") != kind:
        raise ValueError(f"{store.dir} holds a {stored.get('kind')!r} campaign, not {kind!r}")
    # settings a directory did not record (it predates them) are not compared
    diffs = [(k, old[k], new[k]) for k in new
             if k not in _FREE_FIELDS and k in old and old[k] != new[k]]  # fmt: skip
    # settings outside BOConfig the caller binds the campaign to (model, objective, decoding...);
    # ones a directory did not record (it predates them) are not compared
    old_pinned = stored.get("metadata", {}).get("pinned", {})
    new_pinned = (metadata or {}).get("pinned", {})
    diffs += [(k, old_pinned[k], v) for k, v in new_pinned.items()
              if k in old_pinned and old_pinned[k] != v]  # fmt: skip
    if diffs:
        detail = ", ".join(f"{k}: {o!r} -> {n!r}" for k, o, n in diffs)
        raise ValueError(f"{store.dir} was started with other settings ({detail}); use a new dir")
    if new["budget"] < old.get("budget", 0):
        raise ValueError(f"the budget can only grow on resume ({old['budget']} -> {new['budget']})")
    if any(old.get(k) != new[k] for k in _FREE_FIELDS):
        store.write_config({**stored, "config": new})
    return cfg


def _start(
    kind: str,
    cfg: BOConfig,
    out_dir: str | Path,
    fns: _Oracles,
    init_smiles: list[str] | None,
    metadata: dict | None,
) -> _Run:
    """Open (or resume) the directory: check the settings, record the initial design, load the
    state and the trust region."""
    if cfg.retrain_every and (kind != "bo" or fns.retrain_fn is None):
        raise ValueError("retrain_every needs a BO campaign (run_campaign) with a retrain_fn")
    store = CampaignStore(out_dir, writer=True)
    cfg = _check_config(store, kind, cfg, metadata)
    fns.canonical_fn = fns.canonical_fn or default_canonical()
    run = _Run(kind, cfg, store, fns, history=store.load_history(), state={})
    if init_smiles is not None:
        _initial_design(run, init_smiles)
    run.state = store.read_state() or {"iteration": 0, "iterations": [], "trust_region": None}
    run.state.pop("stop_reason", None)  # decided again when this run stops
    run.tr = _initial_trust_region(run)
    restore_model(run)
    return run


def _initial_design(run: _Run, init_smiles: list[str]) -> None:
    """Score and encode the pool, set the latent bounds, append the missing iteration-0 rows."""
    cfg, fns = run.cfg, run.fns
    if fns.encode_fn is None:
        raise ValueError("an initial design needs encode_fn")
    pool = _build_pool(run.store, cfg, init_smiles, fns.encode_fn, fns.objective_fn,
                       fns.canonical_fn)  # fmt: skip
    run.dim = dim = sum(c.startswith("z") and c[1:].isdigit() for c in pool.columns)
    if cfg.bounds == "prior":
        if fns.prior_fn is None:
            raise ValueError("bounds='prior' needs a prior_fn (samples of the model's prior)")
        samples = as_latents(fns.prior_fn(_PRIOR_SAMPLES, iteration_seed(cfg.seed, 0)))
        run.bounds = prior_bounds(samples, cfg.bound_quantile)
    else:
        z = torch.tensor(pool[z_columns(dim)].to_numpy(dtype=float))
        run.bounds = latent_bounds(z, cfg.bound_std)
    history = run.history
    done = set(history.loc[history["iteration"] == 0, "index"]) if len(history) else set()
    rows = [r for r in _init_rows(pool, cfg, dim) if r["index"] not in done]
    if rows:
        run.store.append_rows(rows, dim)
        run.history = run.store.load_history()


def _initial_trust_region(run: _Run) -> TrustRegionState | None:
    """The stored trust region, a fresh one, or None (random search, no initial design, off)."""
    cfg, stored = run.cfg, run.state["trust_region"]
    if run.kind != "bo" or not cfg.trust_region or run.dim is None:
        return None
    return TrustRegionState(**stored) if stored else fresh_region(cfg, run.dim)


def _advance_bar(bar: tqdm, history: pd.DataFrame, t: int, best: float) -> None:
    """Count iteration ``t`` as done on the progress bar, with best, validity and scored count."""
    new = history[history["iteration"] > 0]
    if t > bar.total:  # invalid or duplicate proposals made the budget need more batches
        bar.total = t
    bar.update(1)
    bar.set_postfix(best=f"{best:.3f}", valid=f"{(new['canonical'] != '').mean():.2f}",
                    scored=int(new["status"].isin(SCORED).sum()))  # fmt: skip


def _campaign(
    kind: str,
    cfg: BOConfig,
    fns: _Oracles,
    out_dir: str | Path,
    *,
    init_smiles: list[str] | None,
    progress: bool,
    metadata: dict | None,
    report: bool,
) -> CampaignResult:
    """The loop shared by ``run_campaign`` and ``random_search`` (``kind`` "bo" or "random")."""
    run = _start(kind, cfg, out_dir, fns, init_smiles, metadata)
    t = run.state["iteration"] + 1
    # The bar counts the iterations the budget needs when every proposal scores.
    expected = cfg.max_iterations or math.ceil(cfg.budget / cfg.batch_size)
    bar = tqdm(total=expected, initial=t - 1, disable=not progress, desc=f"{kind} campaign")
    while True:
        pending = _pending_batch(run.store, t)
        remaining = cfg.budget - _n_scored_new(run.history)
        if pending is None:
            reason = stop_reason(cfg, run.state["iterations"], t, remaining)
            if reason is not None:
                break
            if retrain_due(run, t - 1):  # only when the campaign goes on
                retrain(run, t - 1)
        start = time.perf_counter()
        if pending is None:
            pending = _propose(run, t, min(cfg.batch_size, remaining), start)
        _run_batch(run, t, pending)
        _advance_bar(bar, run.history, t, run.state["iterations"][-1]["best"])
        t += 1
    bar.close()
    return _finish(run, reason, report)


def _finish(run: _Run, reason: str, report: bool) -> CampaignResult:
    """Record why the campaign stopped, reload it from its directory, write its report."""
    run.state["stop_reason"] = reason
    _write_state(run.store, run.state, run.history)
    result = load_campaign(run.store.dir)
    if report:
        write_report(result, top_k=run.cfg.top_k)
    return result


def run_campaign(
    config: BOConfig,
    decode_fn: DecodeFn,
    encode_fn: EncodeFn,
    objective_fn: ObjectiveFn,
    init_smiles: list[str],
    out_dir: str | Path,
    *,
    progress: bool = True,
    metadata: dict | None = None,
    canonical_fn: CanonicalFn | None = None,
    report: bool = True,
    prior_fn: SampleFn | None = None,
    retrain_fn: RetrainFn | None = None,
    slack_fn: SlackFn | None = None,
) -> CampaignResult:
    """Run (or resume) a latent-space BO campaign in ``out_dir``.

    ``init_smiles`` are data molecules: ``config.init_pool`` of them are scored and encoded once
    to set the latent bounds and draw the initial design. ``canonical_fn`` defaults to
    ``molvae.chem.canonical``. A directory started with other settings is refused (ValueError);
    only ``budget`` (upwards), ``max_iterations``, ``n_jobs`` and ``top_k`` may change, and
    ``metadata["pinned"]`` (settings outside ``config``, such as the model) must match.
    ``prior_fn(n, seed)`` samples the model's prior (``n x d``); ``config.bounds="prior"`` takes
    the latent box from it. The campaign stops when the budget is scored, after
    ``max_iterations`` or ``ceil(budget / batch_size) + 2`` iterations, or early when batches
    find no new molecule; ``state.json`` and the result say why (``stop_reason``).
    The GP runs on the CPU in float64; on a small shared CPU call ``torch.set_num_threads(1)``
    first (measured: one MLL step 0.008 s with 1 thread vs 0.24 s with 2 contended threads).
    With ``config.retrain_every`` the model is fine-tuned through ``retrain_fn`` every so many
    iterations (weighted retraining, `molvae.bo.retrain`). ``slack_fn`` gives the constraints'
    signed slacks of scored molecules, so each constraint gets its own GP
    (``config.constraint_model="slack"``); without it one GP models feasible / infeasible.
    """
    fns = _Oracles(decode_fn, objective_fn, canonical_fn, encode_fn=encode_fn, prior_fn=prior_fn,
                   retrain_fn=retrain_fn, slack_fn=slack_fn)  # fmt: skip
    return _campaign(
        "bo", config, fns, out_dir, init_smiles=list(init_smiles), progress=progress,
        metadata=metadata, report=report,
    )  # fmt: skip


def random_search(
    config: BOConfig,
    decode_fn: DecodeFn,
    prior_fn: SampleFn,
    objective_fn: ObjectiveFn,
    out_dir: str | Path,
    *,
    init_smiles: list[str] | None = None,
    encode_fn: EncodeFn | None = None,
    progress: bool = True,
    metadata: dict | None = None,
    canonical_fn: CanonicalFn | None = None,
    report: bool = True,
) -> CampaignResult:
    """Random-search baseline in the same harness: z from ``prior_fn(n, seed)`` (``n x d``).

    Same decoding, dedup, records, budget and directory format as ``run_campaign``. With
    ``init_smiles`` (and ``encode_fn``) it starts from the same initial design as BO does.
    """
    fns = _Oracles(decode_fn, objective_fn, canonical_fn, encode_fn=encode_fn, prior_fn=prior_fn)
    return _campaign(
        "random", config, fns, out_dir,
        init_smiles=None if init_smiles is None else list(init_smiles), progress=progress,
        metadata=metadata, report=report,
    )  # fmt: skip
