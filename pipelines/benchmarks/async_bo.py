"""Asynchronous against synchronous BO on a local Dask cluster, with a simulated expensive oracle
of log-normal latency (`async_objective.py`: similarity to celecoxib after a pause of median
``--median`` seconds, DOCKSTRING-like 20 s scaled down); prints a table.

    python pipelines/benchmarks/async_bo.py                       # 8 workers, median 5 s, 200 calls
    python pipelines/benchmarks/async_bo.py --median 1 --budget 120 --seeds 0 1

Both modes run the same default `molvae optimize` campaign (same seed, same initial pool, same
budget, every call counted) on a fresh ``LocalCluster`` of ``--workers`` single-thread worker
processes: ``sync`` in batches of ``--workers`` (a batch waits for its slowest molecule),
``async`` with ``--workers`` calls in flight. Measured from the oracle's own log of each call
(start, end): wall time, worker utilization (busy worker-seconds / (workers x wall) after the
initial pool, whose batch is the same in both; and only until the last call started, without
the drain of the last calls), time to reach each ``--targets`` similarity,
and BO's own time per proposal (``propose_s`` in ``state.json``) against the oracle's mean
latency. The pauses are sleeps: the workers cost no CPU, so this measures scheduling, not a
CPU-bound oracle.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from molvae.bo import BOConfig
from molvae.io import markdown_table, write_text
from molvae.runs import OptimizeRunConfig, optimize

HERE = Path(__file__).resolve().parent
OBJECTIVE = "async_objective:slow_similarity"


def run_mode(mode: str, seed: int, a: argparse.Namespace) -> dict:
    """One campaign on a fresh cluster; its measurements."""
    from distributed import LocalCluster

    out = Path(a.out) / f"{mode}-seed{seed}"
    log = Path(a.out) / f"{mode}-seed{seed}.calls"
    if (out / "state.json").exists() and log.exists():
        wall = json.loads((out / "wall.json").read_text())["wall_s"]
        return measure(mode, seed, out, log, wall, a)
    log.unlink(missing_ok=True)
    os.environ.update(ASYNC_BENCH_MEDIAN=str(a.median), ASYNC_BENCH_SIGMA=str(a.sigma),
                      ASYNC_BENCH_LOG=str(log.resolve()))  # fmt: skip
    path = [str(HERE), os.environ.get("PYTHONPATH")]  # the workers import the objective
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, path))
    cluster = LocalCluster(n_workers=a.workers, threads_per_worker=1, processes=True,
                           dashboard_address=None)  # fmt: skip
    try:
        cfg = BOConfig(budget=a.budget, seed=seed, batch_size=a.workers,
                       async_workers=a.workers if mode == "async" else 0)  # fmt: skip
        run = OptimizeRunConfig(model=a.model, objective=OBJECTIVE, out_dir=str(out),
                                threads=a.threads, scheduler=cluster.scheduler_address)  # fmt: skip
        t0 = time.perf_counter()
        optimize(run, cfg, progress=False)
        wall = time.perf_counter() - t0
    finally:
        cluster.close()
    write_text(out / "wall.json", json.dumps({"wall_s": wall}) + "\n")
    return measure(mode, seed, out, log, wall, a)


def steady_utilization(calls: pd.DataFrame, pool: int, workers: int) -> float:
    """Utilization from the first proposal's call until the last call was started: the
    workers' busy share while the budget still had calls to make, without the drain (the last
    calls finishing one by one, the log-normal's tail) that no scheduler can fill."""
    t0, t1 = calls["start"].iloc[pool:].min(), calls["start"].max()
    busy = (np.minimum(calls["end"], t1) - np.maximum(calls["start"], t0)).clip(lower=0).sum()
    return float(busy / (workers * (t1 - t0))) if t1 > t0 else float("nan")


def measure(mode: str, seed: int, out: Path, log: Path, wall: float,
            a: argparse.Namespace) -> dict:  # fmt: skip
    calls = pd.read_csv(log, sep=" ", names=["start", "end", "smiles"]).sort_values("start")
    config = json.loads((out / "config.json").read_text())["config"]
    state = json.loads((out / "state.json").read_text())
    evals = pd.read_csv(out / "evaluations.csv")
    score = dict(zip(evals["canonical"], evals["score"], strict=False))
    t0 = calls["start"].min()
    pool = config["init_pool"]
    bo = calls.iloc[pool:]  # the proposals' calls (the pool is the same batch in both modes)
    span = bo["end"].max() - bo["start"].min()
    busy = float((bo["end"] - bo["start"]).sum())
    by_end = calls.sort_values("end")
    best = np.maximum.accumulate(by_end["smiles"].map(score).fillna(-1.0).to_numpy())
    reach = {}
    for target in a.targets:
        hit = np.flatnonzero(best >= target)
        reach[f"time to {target:g} (s)"] = (f"{by_end['end'].iloc[hit[0]] - t0:.0f}"
                                            if len(hit) else "not reached")  # fmt: skip
    props = [r["propose_s"] for r in state["iterations"]]
    return {"mode": mode, "seed": seed, "calls": len(calls), "best": f"{best[-1]:.3f}",
            "wall (s)": f"{wall:.0f}", "BO-phase wall (s)": f"{span:.0f}",
            "utilization": f"{busy / (a.workers * span):.0%}",
            "while calls were left": f"{steady_utilization(calls, pool, a.workers):.0%}", **reach,
            "proposals": len(props), "propose_s mean": f"{np.mean(props):.1f}",
            "oracle mean (s)": f"{(calls['end'] - calls['start']).mean():.1f}"}  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--median", type=float, default=5.0, help="oracle latency median, seconds")
    p.add_argument("--sigma", type=float, default=0.75, help="log-normal sigma of the latency")
    p.add_argument("--budget", type=int, default=200)
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--modes", nargs="+", choices=["sync", "async"], default=["sync", "async"])
    p.add_argument("--targets", nargs="+", type=float, default=[0.4, 0.5, 0.6])
    p.add_argument("--model", default="default")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/async_bo")
    return p


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    torch.set_num_threads(a.threads)
    sys.path.insert(0, str(HERE))  # the objective module, for this process's own lookups
    rows = [run_mode(mode, seed, a) for seed in a.seeds for mode in a.modes]
    text = (f"# Asynchronous vs synchronous BO: {a.workers} Dask workers, oracle latency "
            f"log-normal (median {a.median:g} s, sigma {a.sigma:g}), {a.budget} calls\n\n"
            + markdown_table(pd.DataFrame(rows)) + "\n")  # fmt: skip
    write_text(Path(a.out) / "results.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
