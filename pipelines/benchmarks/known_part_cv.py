"""How well the fingerprint GP predicts an objective with an exactly known part, fitted to the
score itself ("direct") or to the score minus the known part, the part added back ("composite",
what ``BOConfig.known_part`` does); prints a table.

    python pipelines/benchmarks/known_part_cv.py --cache runs/dockstring/oracle.sqlite

Reads every molecule an oracle cache (`molvae.chem.cache`) holds scored ``ok`` for
``--objective`` (default ``dockstring:F2``; the objective must declare a known part), splits them
into ``--folds`` folds (seeded), fits the GP on the others and predicts each fold. Columns: the
Spearman rank correlation and RMSE of the held-out predictions against the scores, and the mean
true score of the ``--top`` molecules the predictions rank highest (beside the best possible).
No oracle call is made.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from molvae.bo.fingerprint import fingerprints, fit_fingerprint_gp
from molvae.chem import get_objective, known_part_values
from molvae.io import markdown_table


def cached_scores(path: str, spec: str, version: str) -> tuple[list[str], np.ndarray]:
    """The SMILES and scores the cache at ``path`` holds ``ok`` for objective ``spec`` at
    ``version``."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
        rows = con.execute(
            "SELECT smiles, score FROM scores WHERE objective = ? AND version = ? "
            "AND status = 'ok' ORDER BY smiles",
            (spec, version),
        ).fetchall()
    return [r[0] for r in rows], np.array([r[1] for r in rows], dtype=float)


def cross_validate(
    x: torch.Tensor, y: np.ndarray, known: np.ndarray | None, folds: int, seed: int
) -> np.ndarray:
    """Held-out posterior means (``n``) of the GP fitted to ``y`` (or ``y - known``, with
    ``known`` added back) on the other folds."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(y))
    target = y if known is None else y - known
    pred = np.zeros(len(y))
    for fold in np.array_split(perm, folds):
        train = np.setdiff1d(perm, fold)
        model = fit_fingerprint_gp(x[train], torch.tensor(target[train]))
        with torch.no_grad():
            pred[fold] = model.posterior(x[fold]).mean.squeeze(-1).numpy()
    return pred if known is None else pred + known


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", default="runs/dockstring/oracle.sqlite")
    p.add_argument("--objective", default="dockstring:F2")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    objective = get_objective(a.objective)
    spec = objective.name
    known_fn = known_part_values(spec)
    if known_fn is None:
        p.error(f"objective {spec} declares no known part")
    smiles, y = cached_scores(a.cache, spec, objective.version)
    if len(y) < 2 * a.folds:
        p.error(f"the cache holds {len(y)} ok scores for {spec}: too few for {a.folds} folds")
    known = known_fn(smiles)
    keep = np.isfinite(known)
    smiles, y, known = [s for s, k in zip(smiles, keep, strict=True) if k], y[keep], known[keep]
    torch.set_num_threads(1)
    best = np.sort(y)[-a.top :].mean()
    rows = []
    for kind in ("bits", "counts"):
        x = fingerprints(smiles, kind=kind)
        for name, part in (("direct", None), ("composite", known)):
            pred = cross_validate(x, y, part, a.folds, a.seed)
            top = np.argsort(-pred)[: a.top]
            rows.append([kind, name, f"{spearmanr(pred, y).statistic:.3f}",
                         f"{np.sqrt(np.mean((pred - y) ** 2)):.3f}",
                         f"{y[top].mean():.3f} (best {best:.3f})"])  # fmt: skip
    print(f"{spec}: {len(y)} molecules, {a.folds}-fold cross-validation (seed {a.seed}); "
          f"variance of the score {y.var():.2f}, of its known part "
          f"{known.var():.2f}\n")  # fmt: skip
    cols = ["fingerprints", "GP fitted to", "Spearman", "RMSE",
            f"true mean of the predicted top {a.top}"]  # fmt: skip
    print(markdown_table(pd.DataFrame(rows, columns=cols)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
