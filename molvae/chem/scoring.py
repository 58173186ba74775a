"""Scoring SMILES lists with an objective and constraints, in this process or a process pool;
a bad molecule or objective value becomes a status, never an exception."""

from __future__ import annotations

import itertools
import math
import numbers
import pickle
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from molvae.chem.constraints import Constraint, parse_constraint, parse_constraints, violated
from molvae.chem.molecules import parse
from molvae.chem.objectives import Objective, get_objective

if TYPE_CHECKING:
    from rdkit.Chem import Mol


@lru_cache(maxsize=16)
def _cached_objective(spec: str) -> Objective:
    """Per-process cache so pool workers rebuild each objective only once."""
    return get_objective(spec)


@dataclass
class ScoreResult:
    """Scores of a list of SMILES, aligned with the input.

    ``scores``: float array (NaN where neither ok nor infeasible); ``status``: "ok" |
    "infeasible" (scored, but a constraint does not hold) | "invalid" | "failed"; ``error``: ""
    or a short message (for "infeasible": the constraints missed).
    """

    scores: np.ndarray
    status: list[str] = field(default_factory=list)
    error: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.status)

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask of entries whose status is "ok"."""
        return np.array([s == "ok" for s in self.status], dtype=bool)


def _score_one(
    smiles: Any, fn: Callable[[Mol], float], constraints: Sequence[Constraint] = ()
) -> tuple[float, str, str]:
    mol = parse(smiles)
    if mol is None:
        return math.nan, "invalid", "invalid SMILES"
    try:
        value = fn(mol)
    except Exception as exc:  # a user objective may raise anything; record it, keep going
        return math.nan, "failed", f"{type(exc).__name__}: {exc}"[:200]
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if not isinstance(value, numbers.Real):
        return math.nan, "failed", f"objective returned {type(value).__name__}, not a number"
    value = float(value)
    if not math.isfinite(value):
        return math.nan, "failed", f"objective returned {value}"
    missed = violated(mol, constraints)
    if missed:
        return value, "infeasible", "; ".join(missed)[:200]
    return value, "ok", ""


@lru_cache(maxsize=16)
def _cached_constraints(specs: tuple[str, ...]) -> tuple[Constraint, ...]:
    return parse_constraints(specs)


def _score_chunk(
    smiles: list[str], objective: str | Objective, constraints: tuple[str, ...] = ()
) -> list[tuple[float, str, str]]:
    obj = _cached_objective(objective) if isinstance(objective, str) else objective
    cons = _cached_constraints(constraints)
    return [_score_one(s, obj.fn, cons) for s in smiles]


def score_smiles(
    smiles: Sequence[str],
    objective: str | Objective,
    n_jobs: int = 1,
    constraints: Sequence[str | Constraint] = (),
) -> ScoreResult:
    """Score each SMILES with ``objective``; never raises for a bad molecule or objective value.

    Invalid SMILES get status "invalid"; an objective that raises or returns NaN/inf/non-number
    gets "failed" with the message; a molecule that misses one of ``constraints`` (specs or
    `molvae.chem.constraints.Constraint`) keeps its score with status "infeasible". ``n_jobs >
    1`` scores chunks in a process pool (workers rebuild string objectives and constraints from
    their specs). A bad objective or constraint spec raises ``ValueError``.
    """
    smiles = list(smiles)
    given = [c if isinstance(c, Constraint) else parse_constraint(c) for c in constraints]
    cons = tuple({c.spec: c for c in given}.values())  # once per spec, in order
    specs = tuple(c.spec for c in cons)  # what workers rebuild them from
    obj = get_objective(objective) if isinstance(objective, str) else objective
    payload: str | Objective = objective.strip() if isinstance(objective, str) else obj
    rows: list[tuple[float, str, str]]
    if n_jobs > 1 and len(smiles) > 1 and not isinstance(payload, str):
        try:
            pickle.dumps(payload)
        except Exception:  # lambdas and closures cannot reach workers
            warnings.warn(
                "objective cannot be pickled; scoring in this process", RuntimeWarning, stacklevel=2
            )
            n_jobs = 1
    if n_jobs > 1 and len(smiles) > 1:
        rows = _score_parallel(smiles, payload, n_jobs, specs)
    else:
        rows = [_score_one(s, obj.fn, cons) for s in smiles]
    return ScoreResult(
        scores=np.array([r[0] for r in rows], dtype=float),
        status=[r[1] for r in rows],
        error=[r[2] for r in rows],
    )


def _score_parallel(
    smiles: list[str], payload: str | Objective, n_jobs: int, constraints: tuple[str, ...] = ()
) -> list[tuple[float, str, str]]:
    # A few chunks per worker balance slow molecules without paying pickling per molecule.
    n_chunks = min(len(smiles), n_jobs * 4)
    bounds = np.linspace(0, len(smiles), n_chunks + 1).astype(int)
    chunks = [smiles[a:b] for a, b in itertools.pairwise(bounds)]
    rows: list[tuple[float, str, str]] = []
    with ProcessPoolExecutor(max_workers=n_jobs) as pool:
        futures = [pool.submit(_score_chunk, c, payload, constraints) for c in chunks]
        for chunk, future in zip(chunks, futures, strict=True):
            try:
                rows.extend(future.result())
            except Exception as exc:  # a crashed worker fails its chunk, not the whole call
                msg = f"worker failed: {type(exc).__name__}: {exc}"[:200]
                rows.extend((math.nan, "failed", msg) for _ in chunk)
    return rows
