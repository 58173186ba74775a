"""BO against random search in the same harness, over objectives and seeds; prints a table.

    python pipelines/bo_benchmark.py                       # plogp and qed, seeds 0-2, 5 x 50
    python pipelines/bo_benchmark.py --smoke               # seconds-to-minutes; what CI runs

The protocol follows Kusner et al. and Jin et al. (REFERENCES.md): an initial design of data
molecules, then batches of 50 proposals for 5 iterations. Both methods share the initial design;
scores in the table are of molecules *proposed by the method* (the initial design is excluded), so
a method gets no credit for molecules it was given. Outputs go to ``--out``: one campaign directory
per run, ``results.csv``, ``results.md`` and a BO-vs-random trace plot per objective.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from molvae.bo import BOConfig, compare_traces
from molvae.io import markdown_table
from molvae.runs import OptimizeRunConfig, environment, optimize


def file_stem(objective: str) -> str:
    """A file-name-safe stem for an objective spec: ``similarity:<SMILES>`` may hold ``/`` or
    ``..`` and must never make a path leave ``--out``; a short hash keeps distinct specs apart."""
    stem = re.sub(r"[^A-Za-z0-9_+=-]+", "_", objective).strip("_")[:60] or "objective"
    if stem == objective:
        return stem
    return f"{stem}-{hashlib.sha256(objective.encode()).hexdigest()[:8]}"


def summarize(result, method: str, objective: str, seed: int, wall: float) -> dict:
    """One table row: the method's own proposals only (``source != init``)."""
    h = result.history
    own = h[h["source"] != "init"]
    ok = own[own["status"] == "ok"].sort_values("score", ascending=False)
    top = ok.drop_duplicates("canonical")["score"].tolist()[:3]
    top += [np.nan] * (3 - len(top))
    init_best = h.loc[(h["source"] == "init") & (h["status"] == "ok"), "score"].max()
    times = list(result.iteration_times or [])
    return {
        "objective": objective,
        "method": method,
        "seed": seed,
        "best": top[0],
        "2nd": top[1],
        "3rd": top[2],
        "mean_ok": ok["score"].mean(),
        "init_best": init_best,
        "proposals": len(own),
        "valid_rate": float((own["status"] != "invalid").mean()) if len(own) else np.nan,
        "ok": len(ok),
        "duplicates": int((own["status"] == "duplicate").sum()),
        "s_per_iter": float(np.mean(times)) if times else np.nan,
        "wall_s": wall,
        "best_smiles": ok["canonical"].iloc[0] if len(ok) else "",
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="default")
    p.add_argument("--objectives", nargs="+", default=["plogp", "qed"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--iterations", type=int, default=5)
    p.add_argument("--n-init", type=int, default=250)
    p.add_argument("--methods", nargs="+", default=["bo", "random"])
    p.add_argument("--acquisition", choices=["qlogei", "qucb", "ts"], default="qlogei")
    p.add_argument(
        "--trust-region",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="TuRBO-style trust region for BO (default: on)",
    )
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--unconstrained",
        action="store_true",
        help="decode without the SMILES grammar (as before it existed)",
    )
    p.add_argument("--out", default="campaigns/benchmark")
    p.add_argument("--smoke", action="store_true", help="1 seed, qed, 2 iterations of 5")
    a = p.parse_args(argv)
    if a.smoke:
        a.objectives, a.seeds, a.batch_size, a.iterations, a.n_init = ["qed"], [0], 5, 2, 20

    out = Path(a.out)
    rows = []
    for objective in a.objectives:
        for seed in a.seeds:
            results = {}
            for method in a.methods:
                cfg = BOConfig(
                    budget=a.batch_size * a.iterations,
                    batch_size=a.batch_size,
                    max_iterations=a.iterations,
                    n_init=a.n_init,
                    init_pool=max(2000, a.n_init) if not a.smoke else 100,
                    seed=seed,
                    acquisition=a.acquisition,
                    trust_region=a.trust_region,
                )
                run = OptimizeRunConfig(
                    model=a.model,
                    objective=objective,
                    out_dir=str(out / f"{file_stem(objective)}-{method}-seed{seed}"),
                    method=method,
                    threads=a.threads,
                    constrained=not a.unconstrained,
                )
                t0 = time.perf_counter()
                results[method] = optimize(run, cfg, progress=False)
                rows.append(
                    summarize(results[method], method, objective, seed, time.perf_counter() - t0)
                )
                r = rows[-1]
                print(
                    f"{objective} {method} seed {seed}: best {r['best']:.3f}, "
                    f"valid {r['valid_rate']:.2f}, {r['s_per_iter']:.1f} s/iter",
                    file=sys.stderr,
                )
            compare_traces(results, out / f"{file_stem(objective)}-seed{seed}-traces.png")

    df = pd.DataFrame(rows)
    df.to_csv(out / "results.csv", index=False)
    cols = ["best", "2nd", "3rd", "mean_ok", "valid_rate", "s_per_iter"]
    mean = df.groupby(["objective", "method"])[cols].mean().reset_index()
    mean.insert(2, "seed", "mean")
    table = pd.concat([df[["objective", "method", "seed", *cols]], mean], ignore_index=True)
    env = environment()
    text = (
        f"# BO vs random search ({a.iterations} iterations x {a.batch_size}, "
        f"initial design {a.n_init}, seeds {a.seeds}; BO: {a.acquisition}"
        f"{' + trust region' if a.trust_region else ''}; "
        f"{'unconstrained' if a.unconstrained else 'grammar-constrained'} decoding)\n\n"
        f"Model `{a.model}`; {env['cpu_count']} CPUs, torch {env['torch']}, "
        f"{env['gpu'] or 'no GPU'}. Scores are of molecules each method proposed "
        "(initial design excluded); valid_rate = proposals that decoded to a valid molecule.\n\n"
        + markdown_table(table)
        + "\n"
    )
    (out / "results.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
