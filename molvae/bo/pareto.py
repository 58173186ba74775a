"""Several objectives at once: each molecule's objective vector, the Pareto set and the dominated
hypervolume of a campaign's record.

A multi-objective campaign (``BOConfig.n_objectives`` > 1) records one column per objective in
``evaluations.csv`` (``score_0`` .. ``score_{M-1}``, in the order the objectives were given, all
maximized); ``score`` repeats the first one so that single-objective views of the file still
read it. Hypervolumes are BoTorch's (`DominatedPartitioning`), relative to the campaign's
reference point: the one the user gave, else BoTorch's ``infer_reference_point`` on the initial
design's molecules (the worst of each objective less 10% of its range), fixed once and stored in
``state.json`` so that hypervolumes over a campaign compare.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from botorch.utils.multi_objective.box_decompositions.dominated import DominatedPartitioning
from botorch.utils.multi_objective.hypervolume import infer_reference_point
from botorch.utils.multi_objective.pareto import is_non_dominated

from molvae.bo.accounting import charged_rows


def score_columns(n_objectives: int) -> list[str]:
    """The per-objective columns of ``evaluations.csv``: ``score_0`` .. (none for one)."""
    return [f"score_{i}" for i in range(n_objectives)] if n_objectives > 1 else []


def n_objectives_of(history: pd.DataFrame) -> int:
    """How many objectives a recorded history holds (1 without ``score_<i>`` columns)."""
    n = 0
    while f"score_{n}" in history.columns:
        n += 1
    return max(n, 1)


def objective_matrix(history: pd.DataFrame) -> np.ndarray:
    """``n x M`` objective values of every row (``score`` alone for one objective)."""
    cols = score_columns(n_objectives_of(history)) or ["score"]
    if history.empty:
        return np.zeros((0, len(cols)))
    return history[cols].to_numpy(dtype=float)


def split_values(values: object, n: int, n_objectives: int) -> np.ndarray:
    """An objective function's values for ``n`` molecules as ``n x M`` floats (a 1-D answer
    for one objective is one column); a wrong shape is the caller's bug, said in one line."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 1 and n_objectives == 1:
        arr = arr.reshape(-1, 1)
    if arr.shape != (n, n_objectives):
        raise ValueError(f"the objective returned values of shape {arr.shape} for {n} "
                         f"molecules and {n_objectives} objectives")  # fmt: skip
    return arr


def ok_points(history: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """The objective vectors (``n x M``) and canonical SMILES of the unique molecules scored
    ``ok`` with every objective finite, first row of each."""
    if history.empty:
        return np.zeros((0, n_objectives_of(history))), []
    y = objective_matrix(history)
    keep = (history["status"] == "ok").to_numpy() & np.isfinite(y).all(axis=1)
    keep &= ~history["canonical"].duplicated().to_numpy()
    return y[keep], history.loc[keep, "canonical"].astype(str).tolist()


def known_vectors(history: pd.DataFrame) -> dict[str, list[float]]:
    """Canonical SMILES -> objective vector (``score_<i>`` columns) of every molecule seen, first
    row wins; {} for a single-objective history."""
    cols = [c for c in history.columns if c.startswith("score_")] if len(history) else []
    if not cols:
        return {}
    first = history[history["canonical"] != ""].drop_duplicates("canonical")
    values = first[cols].to_numpy(dtype=float)
    return {c: [float(v) for v in row] for c, row in zip(first["canonical"], values, strict=True)}


def pareto_mask(y: np.ndarray) -> np.ndarray:
    """Which rows of ``y: n x M`` (maximized) no other row dominates (ties: the first kept)."""
    if len(y) == 0:
        return np.zeros(0, dtype=bool)
    return is_non_dominated(torch.as_tensor(y, dtype=torch.float64), deduplicate=True).numpy()


def hypervolume(y: np.ndarray, ref_point: Sequence[float]) -> float:
    """The hypervolume ``y: n x M`` (maximized) dominates above ``ref_point`` (0 for none)."""
    ref = torch.as_tensor(list(ref_point), dtype=torch.float64)
    pts = torch.as_tensor(np.asarray(y, dtype=float), dtype=torch.float64).reshape(-1, len(ref))
    pts = pts[(pts > ref).all(-1)] if len(pts) else pts
    if len(pts) == 0:
        return 0.0
    return float(DominatedPartitioning(ref_point=ref, Y=pts).compute_hypervolume())


def infer_ref_point(y: np.ndarray) -> list[float]:
    """BoTorch's ``infer_reference_point`` on all of ``y`` (``n x M``): the worst value of each
    objective less 10% of its range (a whole unit where the range is 0). Given the Pareto
    front alone it would take the front's nadir, which on a small initial front sits near
    its best values and leaves most trade-offs outside the hypervolume (measured: QED 0.89
    on a 37-molecule pool whose QED ranged from 0.3)."""
    y = np.asarray(y, dtype=float)
    y = y[np.isfinite(y).all(axis=1)]
    if len(y) == 0:
        raise ValueError("no molecule scored ok yet: give the reference point (--ref-point)")
    return [float(v) for v in infer_reference_point(torch.as_tensor(y, dtype=torch.float64))]


def pareto_table(history: pd.DataFrame, labels: Sequence[str] | None = None) -> pd.DataFrame:
    """The Pareto set of the molecules scored ok: canonical, one column per objective (named
    by ``labels``, default ``score_<i>``), iteration and source, sorted by the first objective."""
    y, cans = ok_points(history)
    m = y.shape[1]
    names = list(labels) if labels is not None else (score_columns(m) or ["score"])
    mask = pareto_mask(y)
    first = history.drop_duplicates("canonical").set_index("canonical")
    table = pd.DataFrame(y[mask], columns=names)
    table.insert(0, "canonical", [c for c, k in zip(cans, mask, strict=True) if k])
    for col in ("iteration", "source"):
        table[col] = [first.at[c, col] for c in table["canonical"]]
    return table.sort_values(names[0], ascending=False, kind="stable").reset_index(drop=True)


def hypervolume_trace(
    history: pd.DataFrame, ref_point: Sequence[float], free_pool: bool, every: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """The hypervolume after each ``every`` charged oracle calls, in call order: ``(calls,
    hypervolume)``; a call scored other than ok adds nothing (its call is still counted)."""
    rows = history[charged_rows(history, free_pool)]
    y = objective_matrix(rows)
    ok = (rows["status"] == "ok").to_numpy() & np.isfinite(y).all(axis=1)
    marks = list(range(every, len(rows) + 1, every))
    if len(rows) and (not marks or marks[-1] != len(rows)):
        marks.append(len(rows))
    hv = [hypervolume(y[:n][ok[:n]], ref_point) for n in marks]
    return np.asarray(marks, dtype=int), np.asarray(hv, dtype=float)


def front_summary(history: pd.DataFrame, ref_point: Sequence[float] | None) -> dict[str, object]:
    """``state.json``'s multi-objective fields: the reference point, the hypervolume and the
    Pareto set (canonical SMILES and objective vector of each)."""
    y, cans = ok_points(history)
    mask = pareto_mask(y)
    hv = math.nan if ref_point is None else hypervolume(y, ref_point)
    return {"ref_point": None if ref_point is None else list(ref_point), "hypervolume": hv,
            "pareto": [{"canonical": c, "scores": [float(v) for v in row]}
                       for c, row, k in zip(cans, y, mask, strict=True) if k]}  # fmt: skip
