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

from tqdm.auto import tqdm

from molvae.bo.accounting import oracle_calls
from molvae.bo.async_loop import run_async
from molvae.bo.campaign_run import CampaignRun, Oracles, pending_batch, write_state
from molvae.bo.chemistry import default_canonical
from molvae.bo.config import (
    LEGACY_SETTINGS,
    BOConfig,
    CanonicalFn,
    DecodeFn,
    EncodeFn,
    KnownFn,
    ObjectiveFn,
    SampleFn,
    SlackFn,
    resolve_init_pool,
)
from molvae.bo.design import initial_design
from molvae.bo.init_data import InitData, pin_init_data, read_init_data
from molvae.bo.iteration import propose, run_batch
from molvae.bo.report import write_report
from molvae.bo.retrain import fresh_region, restore_model, retrain, retrain_due
from molvae.bo.retrain_data import RetrainFn
from molvae.bo.stopping import stop_reason
from molvae.bo.store import CampaignResult, CampaignStore, load_campaign
from molvae.bo.trust_region import TrustRegionState

# Config fields that may change on resume: they leave what is recorded valid (async_workers
# changes how the next molecules are proposed, not the meaning of the rows and records so far).
_FREE_FIELDS = ("budget", "max_iterations", "n_jobs", "top_k", "async_workers")


def _check_config(
    store: CampaignStore,
    kind: str,
    cfg: BOConfig,
    metadata: dict | None,
    has_init_data: bool = False,
    has_pool_data: bool = True,
) -> BOConfig:
    """Record a new directory's settings (``init_pool`` resolved); refuse to resume one started
    with other settings. Returns the settings to run with: ``cfg``, its ``init_pool=None``
    the stored one, and a directory that predates a setting goes on as it started
    (`LEGACY_SETTINGS`)."""
    stored = store.read_config()
    if stored is None:
        cfg = resolve_init_pool(cfg, has_init_data, has_pool_data)
        store.write_config({"kind": kind, "config": asdict(cfg), "metadata": metadata or {}})
        return cfg
    old = dict(stored.get("config", {}))
    cfg = replace(cfg, **{k: v for k, v in LEGACY_SETTINGS.items() if k not in old})
    unresolved = old.get("init_pool") is None  # a directory written by hand, not by start_campaign
    if unresolved:
        old.pop("init_pool", None)
    if cfg.init_pool is None:  # the pool the campaign began with, whatever the budget now
        cfg = (resolve_init_pool(cfg, has_init_data, has_pool_data) if unresolved
               else replace(cfg, init_pool=old["init_pool"]))  # fmt: skip
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
    if "init_data_sha256" in new_pinned and "init_data_sha256" not in old_pinned:
        raise ValueError(f"{store.dir} was started without init data; start a new dir from it")
    if new["budget"] < old.get("budget", 0):
        raise ValueError(f"the budget can only grow on resume ({old['budget']} -> {new['budget']})")
    if unresolved or any(old.get(k) != new[k] for k in _FREE_FIELDS):
        store.write_config({**stored, "config": new})
    return cfg


def start_campaign(
    kind: str,
    cfg: BOConfig,
    out_dir: str | Path,
    fns: Oracles,
    init_smiles: list[str] | None,
    metadata: dict | None,
    init_data: InitData | None = None,
) -> CampaignRun:
    """Open (or resume) the directory: check the settings, record the initial design, load the
    state and the trust region."""
    if cfg.n_objectives > 1 and (init_data is not None or kind == "gradient"):
        raise ValueError("init data (one score column) and gradient ascent (one property "
                         "head) cannot take several objectives yet")  # fmt: skip
    if cfg.retrain_every and (kind != "bo" or fns.retrain_fn is None):
        raise ValueError("retrain_every needs a BO campaign (run_campaign) with a retrain_fn")
    data = None if init_data is None else read_init_data(init_data)
    metadata = pin_init_data(metadata, init_data, data)
    store = CampaignStore(out_dir, writer=True, n_objectives=cfg.n_objectives)
    cfg = _check_config(store, kind, cfg, metadata, data is not None, init_smiles is not None)
    fns.canonical_fn = fns.canonical_fn or default_canonical()
    run = CampaignRun(kind, cfg, store, fns, history=store.load_history(), state={})
    if init_smiles is not None or data is not None:
        initial_design(run, init_smiles, data)
    run.state = store.read_state() or {"iteration": 0, "iterations": [], "trust_region": None}
    run.state.pop("stop_reason", None)  # decided again when this run stops
    run.tr = _initial_trust_region(run)
    restore_model(run)
    return run


def _initial_trust_region(run: CampaignRun) -> TrustRegionState | None:
    """The stored trust region, a fresh one, or None (random search, no initial design, off)."""
    cfg, stored = run.cfg, run.state["trust_region"]
    if run.kind != "bo" or not cfg.trust_region or run.dim is None or cfg.surrogate != "latent":
        return None
    return TrustRegionState(**stored) if stored else fresh_region(cfg, run.dim)


def _advance_bar(bar: tqdm, run: CampaignRun, t: int) -> None:
    """Count iteration ``t`` as done on the progress bar, with best, validity and oracle calls."""
    history = run.history
    new = history[history["iteration"] > 0]
    if t > bar.total:  # invalid or duplicate proposals made the budget need more batches
        bar.total = t
    bar.update(1)
    bar.set_postfix(best=f"{run.state['iterations'][-1]['best']:.3f}",
                    valid=f"{(new['canonical'] != '').mean():.2f}",
                    calls=oracle_calls(history, run.cfg.free_pool))  # fmt: skip


def initial_calls(run: CampaignRun) -> int:
    """Oracle calls the initial design was charged (a charged pool; 0 with a free one)."""
    h = run.history
    return oracle_calls(h[h["iteration"] == 0], run.cfg.free_pool) if len(h) else 0


def _campaign(
    kind: str,
    cfg: BOConfig,
    fns: Oracles,
    out_dir: str | Path,
    *,
    init_smiles: list[str] | None,
    progress: bool,
    metadata: dict | None,
    report: bool,
    init_data: InitData | None = None,
) -> CampaignResult:
    """The loop shared by ``run_campaign`` and ``random_search`` (``kind`` "bo" or "random");
    with ``report`` the report is rewritten after every batch and when the campaign stops."""
    run = start_campaign(kind, cfg, out_dir, fns, init_smiles, metadata, init_data)
    cfg = run.cfg  # init_pool resolved; an old directory's settings
    t = run.state["iteration"] + 1
    initial = initial_calls(run)
    if cfg.async_workers:
        pending = pending_batch(run.store, t)
        if pending is not None:  # a synchronous batch a kill interrupted: finished first
            run_batch(run, t, pending)
            t += 1
        reason = run_async(run, t, initial, lambda: refresh_report(run, report), progress)
        return finish_campaign(run, reason, report)
    if run.store.read_in_flight():
        raise ValueError(f"{run.store.dir} was stopped with asynchronous calls in flight "
                         "(in_flight.json): resume it asynchronously (async_workers, "
                         "molvae optimize --async)")  # fmt: skip
    # The bar counts the iterations the budget needs when every proposal scores.
    expected = cfg.max_iterations or math.ceil(max(cfg.budget - initial, 0) / cfg.batch_size)
    bar = tqdm(total=expected, initial=t - 1, disable=not progress, desc=f"{kind} campaign")
    while True:
        pending = pending_batch(run.store, t)
        remaining = cfg.budget - oracle_calls(run.history, cfg.free_pool)
        if pending is None:
            reason = stop_reason(cfg, run.state["iterations"], t, remaining, initial)
            if reason is not None:
                break
            if retrain_due(run, t - 1):  # only when the campaign goes on
                retrain(run, t - 1)
        start = time.perf_counter()
        if pending is None:
            pending = propose(run, t, min(cfg.batch_size, remaining), start)
        run_batch(run, t, pending)
        refresh_report(run, report)
        _advance_bar(bar, run, t)
        t += 1
    bar.close()
    return finish_campaign(run, reason, report)


def refresh_report(run: CampaignRun, report: bool) -> None:
    """Rewrite the report after a batch (when ``report``): with an oracle of minutes a molecule
    a campaign runs for days, and its report should show where it stands."""
    if report:
        write_report(load_campaign(run.store.dir), top_k=run.cfg.top_k)


def finish_campaign(run: CampaignRun, reason: str, report: bool) -> CampaignResult:
    """Record why the campaign stopped, reload it from its directory, write its report."""
    run.state["stop_reason"] = reason
    write_state(run.store, run.state, run.history, run.cfg)
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
    init_data: InitData | None = None,
    known_fn: KnownFn | None = None,
) -> CampaignResult:
    """Run (or resume) a latent-space BO campaign in ``out_dir``.

    ``init_smiles`` are data molecules: ``config.init_pool`` of them are scored (charged to the
    budget unless ``config.free_pool``) and encoded once to set the latent bounds and make the
    initial design. ``init_data`` (a DataFrame or CSV file: ``smiles``, ``score``, optional
    ``status``; `molvae.bo.init_data.read_init_data`) are molecules already measured: they join
    the initial design at no oracle cost and are never scored again; the directory is pinned
    to them (``init_data_sha256``). ``canonical_fn`` defaults to
    ``molvae.chem.canonical``. A directory started with other settings is refused (ValueError);
    only ``budget`` (upwards), ``max_iterations``, ``n_jobs`` and ``top_k`` may change, and
    ``metadata["pinned"]`` (settings outside ``config``, such as the model) must match.
    ``prior_fn(n, seed)`` samples the model's prior (``n x d``); ``config.bounds="prior"`` takes
    the latent box from it. The campaign stops when the budget of oracle calls is spent
    (`molvae.bo.accounting.oracle_calls`), after ``max_iterations`` or ``ceil(budget left after the
    initial design / batch_size) + 2`` iterations, or early when batches find no new molecule;
    ``state.json`` and the result say why (``stop_reason``).
    The GP runs on the CPU in float64; on a small shared CPU call ``torch.set_num_threads(1)``
    first (measured: one MLL step 0.008 s with 1 thread vs 0.24 s with 2 contended threads).
    With ``config.retrain_every`` the model is fine-tuned through ``retrain_fn`` every so many
    iterations (weighted retraining, `molvae.bo.retrain`). ``slack_fn`` gives the constraints'
    signed slacks of scored molecules, so each constraint gets its own GP
    (``config.constraint_model="slack"``); without it one GP models feasible / infeasible.
    ``known_fn``: the objective's part known exactly (`BOConfig.known_part`).
    With ``config.async_workers`` the campaign is asynchronous (`molvae.bo.async_loop`):
    ``objective_fn`` is then called from that many threads at once, one molecule a call.
    """
    fns = Oracles(decode_fn, objective_fn, canonical_fn, encode_fn=encode_fn, prior_fn=prior_fn,
                   retrain_fn=retrain_fn, slack_fn=slack_fn, known_fn=known_fn)  # fmt: skip
    return _campaign("bo", config, fns, out_dir, init_smiles=list(init_smiles), progress=progress,
                     metadata=metadata, report=report, init_data=init_data)  # fmt: skip


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
    init_data: InitData | None = None,
) -> CampaignResult:
    """Random-search baseline in the same harness: z from ``prior_fn(n, seed)`` (``n x d``).

    Same decoding, dedup, records, budget and directory format as ``run_campaign``. With
    ``init_smiles`` and ``init_data`` (and ``encode_fn``) it starts from the same initial
    design as BO does; without ``init_smiles`` a charged pool is empty (``init_pool`` 0).
    """
    fns = Oracles(decode_fn, objective_fn, canonical_fn, encode_fn=encode_fn, prior_fn=prior_fn)
    return _campaign(
        "random", config, fns, out_dir,
        init_smiles=None if init_smiles is None else list(init_smiles), progress=progress,
        metadata=metadata, report=report, init_data=init_data,
    )  # fmt: skip
