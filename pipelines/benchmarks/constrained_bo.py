"""Constrained BO against unconstrained BO filtered afterwards; prints a table.

    python pipelines/benchmarks/constrained_bo.py --objective tpsa -C "mw<=350" -C filters
    python pipelines/benchmarks/constrained_bo.py --smoke --model MODEL   # seconds

Per seed, `molvae optimize` campaigns from the same initial design (``--methods``): ``free``
(the objective alone), ``binary`` (with ``--constraint``; one GP of feasible / infeasible weighs
the acquisition) and ``slack`` (one GP per constraint on its signed slack, SCBO; see
`molvae.bo.acquisition`). Each campaign's proposals (initial design excluded) are scored against
the constraints afterwards, so both are judged alike: how many feasible molecules it proposed,
the best and the top-10 mean among them. Outputs go to ``--out``: the campaign directories,
``results.csv`` and ``results.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from molvae.bo import BOConfig
from molvae.chem import score_smiles
from molvae.io import markdown_table, write_csv, write_text
from molvae.runs import OptimizeRunConfig, environment, optimize

METHODS = ("free", "binary", "slack")


def judge(result, objective: str, constraints: list[str]) -> dict:
    """What a campaign proposed, scored against ``constraints``: feasible count, best, top-10."""
    h = result.history
    new = h[(h["iteration"] > 0) & h["status"].isin(["ok", "infeasible"])]
    res = score_smiles(new["canonical"].tolist(), objective, constraints=constraints)
    scores = np.sort(res.scores[res.ok])[::-1]
    return {"scored": len(new), "feasible": int(res.ok.sum()),
            "feasible_rate": float(res.ok.mean()) if len(new) else np.nan,
            "best": float(scores[0]) if len(scores) else np.nan,
            "top10_mean": float(scores[:10].mean()) if len(scores) else np.nan,
            "best_smiles": new["canonical"].to_numpy()[res.ok][np.argmax(res.scores[res.ok])]
            if len(scores) else ""}  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="default")
    p.add_argument("--objective", default="tpsa")
    p.add_argument("--constraint", "-C", action="append", default=None)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--budget", type=int, default=250)
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--acquisition", choices=["qlogei", "qucb", "ts"], default="qlogei")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="campaigns/constrained-benchmark")
    p.add_argument("--smoke", action="store_true", help="1 seed, 2 batches of 5")
    return p


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    constraints = a.constraint or ["mw<=350", "filters"]
    n_init, pool = 250, 2000
    if a.smoke:
        a.seeds, a.budget, a.batch_size, n_init, pool = [0], 10, 5, 20, 100
    rows = []
    for seed in a.seeds:
        for method in a.methods:
            model = "binary" if method == "binary" else "slack"  # free: no constraint to model
            cfg = BOConfig(budget=a.budget, batch_size=a.batch_size, n_init=n_init,
                           init_pool=pool, free_pool=True, seed=seed, acquisition=a.acquisition,
                           constraint_model=model, surrogate="latent")  # fmt: skip
            cons = [] if method == "free" else constraints
            run = OptimizeRunConfig(model=a.model, objective=a.objective, threads=a.threads,
                                    out_dir=str(Path(a.out) / f"{method}-seed{seed}"),
                                    constraints=cons)  # fmt: skip
            result = optimize(run, cfg, progress=False)
            rows.append({"method": method, "seed": seed,
                         **judge(result, a.objective, constraints)})  # fmt: skip
            print(f"{method} seed {seed}: {rows[-1]}", file=sys.stderr)
    df = pd.DataFrame(rows)
    cols = ["feasible", "feasible_rate", "best", "top10_mean"]
    summary = df.groupby("method", sort=False)[cols].agg(["mean", "std"])
    summary.columns = [f"{c} {s}" for c, s in summary.columns]
    env = environment()
    text = (f"# {a.objective} subject to {', '.join(constraints)}: constrained BO "
            f"({' vs '.join(a.methods)})\n\nBudget {a.budget} in batches of {a.batch_size}, "
            f"{a.acquisition}, seeds {a.seeds}; model `{a.model}`; {env['cpu_count']} CPUs, "
            f"torch {env['torch']}. "
            "Proposals only (initial design excluded), scored against the constraints.\n\n"
            + markdown_table(summary.round(3).reset_index()) + "\n\n## Per run\n\n"
            + markdown_table(df.round(3)) + "\n")  # fmt: skip
    write_csv(Path(a.out) / "results.csv", df)
    write_text(Path(a.out) / "results.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
