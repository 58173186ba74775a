"""Similarity-constrained property improvement (Jin et al. 2018, Table 3; also GCPN, MoFlow).

For each start molecule m and threshold δ: the best improvement ``f(m') - f(m)`` among the
candidates m' found for it with Tanimoto(m, m') >= δ (Morgan radius 2, 2048 bits), ``f`` the
unnormalized penalized logP by default. Conventions, stated because papers differ:

- A start with no candidate inside the threshold, or none that improves on it, counts as an
  improvement of 0 and a failure (JT-VAE's optimizer returns the start molecule itself then,
  improvement 0, and its mean is over all 800); `summarize` also gives the mean over successes.
- Success: the best improvement is > 0.
- A candidate that is the start molecule itself up to stereochemistry does not count: dropping
  stereo can lower the SA score (fewer chiral centres found) and would pass for an improvement
  at similarity 1.
- Both sides are scored by the same function here (not the scores shipped with the data).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
from rdkit import Chem, DataStructs

from molvae.chem import parse
from molvae.chem.properties import morgan_fingerprint, penalized_logp_raw

THRESHOLDS = (0.4, 0.6)
# published rows of Jin et al. 2018 Table 3 / GCPN / MoFlow: (mean, std, success) per threshold
PUBLISHED = {
    "JT-VAE": {0.4: (0.84, 1.45, 0.836), 0.6: (0.21, 0.71, 0.464)},
    "GCPN": {0.4: (2.49, 1.30, 1.0), 0.6: (0.79, 0.63, 1.0)},
    "MoFlow": {0.4: (4.71, 4.55, 0.857), 0.6: (2.10, 2.86, 0.583)},
}


def without_stereo(smiles: str) -> str | None:
    """Canonical SMILES with stereochemistry dropped (None if it does not parse): the model's
    vocabulary has no stereo tokens, and neither penalized logP's logP and ring terms nor the
    Morgan similarity see stereo (the SA score can: it counts chiral centres it finds)."""
    mol = parse(smiles)
    return None if mol is None else Chem.MolToSmiles(mol, isomericSmiles=False)


class _Molecules:
    """Parsed candidates by SMILES: fingerprint and stereo-free key at once, the score only when
    asked (most candidates fall below every threshold and never need it)."""

    def __init__(self, score_fn: Callable):
        self.score_fn = score_fn
        self.mols: dict[str, tuple[Chem.Mol, str, DataStructs.ExplicitBitVect] | None] = {}
        self.scores: dict[str, float] = {}

    def get(self, smiles: str) -> tuple[Chem.Mol, str, DataStructs.ExplicitBitVect] | None:
        if smiles not in self.mols:
            mol = parse(smiles)
            self.mols[smiles] = None if mol is None else (
                mol, Chem.MolToSmiles(mol, isomericSmiles=False), morgan_fingerprint(mol)
            )  # fmt: skip
        return self.mols[smiles]

    def score(self, smiles: str) -> float:
        if smiles not in self.scores:
            try:
                value = float(self.score_fn(self.mols[smiles][0]))
            except Exception:  # a property that fails on an odd molecule: candidate skipped
                value = math.nan
            self.scores[smiles] = value
        return self.scores[smiles]


def best_improvements(
    starts: Sequence[str],
    candidates: Iterable[tuple[int, str]],
    thresholds: Sequence[float] = THRESHOLDS,
    score_fn: Callable = penalized_logp_raw,
) -> pd.DataFrame:
    """One row per start: its score, and per threshold δ the best improvement (0 when none),
    the candidate that gave it and its similarity. ``candidates``: (start index, SMILES) pairs;
    invalid SMILES are skipped. Columns ``improvement_<δ>``, ``smiles_<δ>``, ``sim_<δ>``."""
    mols = _Molecules(score_fn)
    ref = [mols.get(s) for s in starts]
    ref_scores = [mols.score(s) if r else math.nan for s, r in zip(starts, ref, strict=True)]
    bad = [s for s, v in zip(starts, ref_scores, strict=True) if not math.isfinite(v)][:3]
    if bad:
        raise ValueError(f"start molecules that cannot be parsed or scored: {bad}")
    best = {(i, d): (0.0, "", math.nan) for i in range(len(starts)) for d in thresholds}
    lowest = min(thresholds)
    for i, smi in candidates:
        cand, r = mols.get(smi), ref[i]
        if cand is None or cand[1] == r[1]:
            continue
        sim = DataStructs.TanimotoSimilarity(cand[2], r[2])
        if sim < lowest:
            continue
        gain = mols.score(smi) - ref_scores[i]
        for d in thresholds:
            if sim >= d and gain > best[i, d][0]:  # NaN never is
                best[i, d] = (gain, smi, sim)
    rows = []
    for i, s in enumerate(starts):
        row = {"start": s, "score": ref_scores[i]}
        for d in thresholds:
            gain, smi, sim = best[i, d]
            row |= {f"improvement_{d}": gain, f"smiles_{d}": smi, f"sim_{d}": sim}
        rows.append(row)
    return pd.DataFrame(rows)


def summarize(per_start: pd.DataFrame, thresholds: Sequence[float] = THRESHOLDS) -> pd.DataFrame:
    """Per threshold: n, mean and std (ddof 0) of the improvement over all starts (failures 0),
    the success rate, and the mean over successes only."""
    rows = []
    for d in thresholds:
        v = per_start[f"improvement_{d}"].to_numpy(dtype=float)
        ok = v > 0
        rows.append({"delta": d, "n": len(v), "mean": float(v.mean()) if len(v) else math.nan,
                     "std": float(v.std()) if len(v) else math.nan,
                     "success": float(ok.mean()) if len(v) else math.nan,
                     "mean_success": float(v[ok].mean()) if ok.any() else math.nan})  # fmt: skip
    return pd.DataFrame(rows)


def table(summary: pd.DataFrame, name: str = "this model") -> pd.DataFrame:
    """The summary beside the published rows: ``method``, then per δ ``improvement`` (mean ±
    std) and ``success`` (%)."""
    rows = []
    ours = {float(r["delta"]): (r["mean"], r["std"], r["success"]) for _, r in summary.iterrows()}
    for method, values in [*PUBLISHED.items(), (name, ours)]:
        row = {"method": method}
        for d in sorted(ours):
            m, s, succ = values.get(d, (np.nan, np.nan, np.nan))
            row[f"δ={d} improvement"] = f"{m:.2f} ± {s:.2f}"
            row[f"δ={d} success"] = f"{100 * succ:.1f}%"
        rows.append(row)
    return pd.DataFrame(rows)
