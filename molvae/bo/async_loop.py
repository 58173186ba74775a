"""Asynchronous BO: ``BOConfig.async_workers`` oracle calls kept running after the initial
design, so no worker waits for a batch's slowest molecule.

Each time calls finish, their molecules are recorded at once (``evaluations.csv``, fsynced), the
surrogate is refitted and as many molecules are proposed as calls are free, conditioned on the
molecules still running (`molvae.bo.iteration.propose`: never proposed twice, BoTorch's
``X_pending`` or the GP believing its own mean there). One proposal is one iteration; its record
(``state.json``) is written when its last call returns, so iterations are recorded in the order
they finish.

The GP does not wait for the oracle: while every worker is busy the next molecule is proposed
ahead (its record says ``ahead``), conditioned on the calls running then, and a worker whose
call returns gets it at once; the returned result conditions the proposal after it. Graph GA's
candidates are kept for a few proposals (`molvae.bo.candidate_reuse`), so a proposal of one
molecule costs a GP refit and a Thompson draw rather than a new candidate search.

Resume (a kill at any point): a proposal is written to ``in_flight.json``, molecules chosen,
before any of its calls starts, and leaves it when recorded. A resumed campaign re-submits the
molecules of those proposals that ``evaluations.csv`` does not hold yet, the same molecules,
not new proposals, and records nothing twice; a call that had finished but was not recorded is
computed again unless the oracle cache holds it (``--cache``). It then goes on proposing from
the recorded history, so what it proposes next may differ from what the killed run would have
proposed (which calls had returned decides that), unlike a synchronous campaign's bit-identical
resume.

Objective calls run in a thread pool of ``async_workers`` threads, one molecule per call: the
objective function decides where the work happens (a Dask cluster's workers, local processes,
a docking child process).
"""

from __future__ import annotations

import math
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from molvae.bo.accounting import SCORED, call_status, oracle_calls
from molvae.bo.campaign_run import CampaignRun
from molvae.bo.candidate_reuse import CandidateReuse
from molvae.bo.iteration import propose, record_iteration
from molvae.bo.pareto import known_vectors, split_values
from molvae.bo.scoring import given_batch, resolve_batch
from molvae.bo.stopping import stop_reason
from molvae.bo.store import known_scores

REPORT_EVERY_S = 30.0  # the report is rewritten at most this often while calls run


@dataclass
class Flight:
    """One proposal whose calls are running: its persisted entry, the futures of its new
    molecules (future -> row index), and when its calls started."""

    entry: dict[str, Any]
    futures: dict[Future, int] = field(default_factory=dict)
    submitted: dict[int, float] = field(default_factory=dict)  # row index -> start time
    call_s: float = 0.0  # the finished calls' wall time, as this loop saw it
    created: float = field(default_factory=time.perf_counter)


def _canonicals(flights: list[Flight]) -> list[str]:
    return [r["canonical"] for f in flights for r in f.entry["rows"] if r["canonical"]]


def _running(flights: list[Flight]) -> int:
    return sum(len(f.futures) for f in flights)


def _z_in_flight(flights: list[Flight], dim: int | None) -> torch.Tensor | None:
    zs = [r["z"] for f in flights for r in f.entry["rows"] if r["status"] == "new"]
    if not zs or dim is None:
        return None
    z = torch.tensor(zs, dtype=torch.float64).reshape(-1, dim)
    return z[torch.isfinite(z).all(-1)]


def _entry(run: CampaignRun, t: int, q: int, flights: list[Flight], start: float) -> dict:
    """Propose iteration ``t``'s ``q`` molecules, conditioned on ``flights``, and choose them
    (decoding latent proposals, re-drawing known or running molecules)."""
    running = _canonicals(flights)
    pending = propose(run, t, q, start, running, _z_in_flight(flights, run.dim), persist=False)
    z = torch.tensor(pending["z"], dtype=torch.float64)
    run.dim = z.shape[1]
    known = {c for c in run.history.get("canonical", []) if c} | set(running)
    if pending.get("smiles") is not None:
        rows, stats = given_batch(pending["smiles"], pending["sources"], z, known,
                                  run.fns.canonical_fn)  # fmt: skip
    else:
        spare = torch.tensor(pending.get("spare") or [], dtype=torch.float64).reshape(
            -1, z.shape[1])  # fmt: skip
        rows, stats = resolve_batch(z, spare, pending["seed"], pending["source"], known, run.cfg,
                                    run.fns.decode_fn, run.fns.canonical_fn)  # fmt: skip
    record = {**pending["record"], "in_flight": _running(flights)}
    return {"iteration": t, "seed": pending["seed"], "source": pending["source"],
            "rows": rows, "stats": stats, "record": record}  # fmt: skip


def _ahead(run: CampaignRun, t: int, flights: list[Flight]) -> dict:
    """One molecule proposed while every worker is busy: the GP works while the oracle does,
    and a worker whose call returns gets it at once (chosen without that call's result, which
    the next proposal sees) instead of waiting for a refit."""
    entry = _entry(run, t, 1, flights, time.perf_counter())
    entry["record"]["ahead"] = True
    return entry


def _submit(run: CampaignRun, pool: ThreadPoolExecutor, flight: Flight, done: set[int]) -> None:
    for r in flight.entry["rows"]:
        if r["status"] == "new" and r["index"] not in done:
            fut = pool.submit(run.fns.objective_fn, [r["canonical"]])
            flight.futures[fut] = r["index"]
            flight.submitted[r["index"]] = time.perf_counter()


def _finish_call(run: CampaignRun, flight: Flight, fut: Future) -> None:
    """Record one finished call's row in ``evaluations.csv`` at once."""
    i = flight.futures.pop(fut)
    row = flight.entry["rows"][i]
    flight.call_s += time.perf_counter() - flight.submitted.pop(i)
    values, status = fut.result()  # the objective turns a bad molecule into a status
    vec = split_values(values, 1, run.cfg.n_objectives)[0]
    new_status = call_status(float(vec[0]) if np.isfinite(vec).all() else math.nan, status[0])
    scored = new_status in SCORED
    run.store.append_rows([{"iteration": flight.entry["iteration"], **row,
                            "score": float(vec[0]) if scored else math.nan,
                            "scores": [float(v) if scored else math.nan for v in vec],
                            "status": new_status}], len(row["z"]))  # fmt: skip
    run.history = run.store.load_history()


def _record(run: CampaignRun, flight: Flight, t_eval: float) -> None:
    """All calls of a proposal are back: record its free rows (duplicates, invalid strings)
    and the iteration."""
    t = flight.entry["iteration"]
    h = run.history
    have = set(h.loc[h["iteration"] == t, "index"]) if len(h) else set()
    scores, vectors = known_scores(h), known_vectors(h)
    free = [
        {
            "iteration": t,
            **r,
            "score": scores.get(r["canonical"], math.nan),
            "scores": vectors.get(r["canonical"]),
        }
        for r in flight.entry["rows"]
        if r["status"] != "new" and r["index"] not in have
    ]
    if free:
        run.store.append_rows(free, len(free[0]["z"]))
        run.history = run.store.load_history()
    record_iteration(run, t, flight.entry, flight.entry["stats"], t_eval,
                     {"oracle_s": flight.call_s})  # fmt: skip


def run_async(run: CampaignRun, t: int, initial: int, report_fn, progress: bool) -> str:
    """Asynchronous BO from iteration ``t`` until the budget is spent (or another stop
    reason); returns the stop reason. ``report_fn()`` rewrites the report."""
    cfg = run.cfg
    workers = cfg.async_workers
    # the stall and cap rules of `stop_reason` per proposal of at least one molecule
    rule = replace(cfg, batch_size=1)
    flights = [Flight(e) for e in run.store.read_in_flight()]
    run.reuse = CandidateReuse()
    ahead: dict | None = None  # the next proposal, made while every worker is busy
    t = max([t, *(f.entry["iteration"] + 1 for f in flights)])
    spent = oracle_calls(run.history, cfg.free_pool)
    bar = tqdm(total=cfg.budget, initial=spent, disable=not progress, desc="async BO (calls)")
    last_report = time.perf_counter()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="molvae-oracle")
    try:
        h = run.history
        for f in flights:  # resumed: re-submit what evaluations.csv does not hold
            t_f = f.entry["iteration"]
            _submit(run, pool, f, set(h.loc[h["iteration"] == t_f, "index"]) if len(h) else set())
        reason = None
        while True:
            for f in [f for f in flights if not f.futures]:  # nothing left running
                _record(run, f, f.created)
                flights.remove(f)
                run.store.write_in_flight([g.entry for g in flights])
            spent = oracle_calls(run.history, cfg.free_pool)
            bar.n = spent
            bar.refresh()
            free = min(workers - _running(flights), cfg.budget - spent - _running(flights))
            reason = stop_reason(rule, run.state["iterations"], t,
                                 cfg.budget - spent - _running(flights), initial)  # fmt: skip
            if free > 0 and reason is None:
                entry, ahead = ahead or _entry(run, t, free, flights, time.perf_counter()), None
                flight = Flight(entry)
                flights.append(flight)
                run.store.write_in_flight([g.entry for g in flights])  # before any call starts
                _submit(run, pool, flight, set())
                t += 1
                continue  # a proposal of known molecules only is recorded at once, then again
            running = [fut for f in flights for fut in f.futures]
            if not running:
                break
            if ahead is None and reason is None and cfg.budget - spent - len(running) > 0:
                ahead = _ahead(run, t, flights)
                continue
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in flights:
                for fut in [x for x in f.futures if x in done]:
                    _finish_call(run, f, fut)
            if time.perf_counter() - last_report > REPORT_EVERY_S:
                report_fn()
                last_report = time.perf_counter()
    finally:
        # a kill or an error: the running calls are abandoned, in_flight.json keeps them
        pool.shutdown(wait=False, cancel_futures=True)
        bar.close()
    spent = oracle_calls(run.history, cfg.free_pool)
    return stop_reason(rule, run.state["iterations"], t, cfg.budget - spent, initial) or reason
