"""Scoring SMILES lists with an objective and constraints, in this process or a process pool;
a bad molecule or objective value becomes a status, never an exception. With an
`molvae.chem.cache.OracleCache`, each molecule's objective outcome is looked up first and stored
after, so no molecule is computed twice."""

from __future__ import annotations

import contextlib
import itertools
import math
import numbers
import os
import pickle
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from molvae.chem.cache import CachedScore, CacheRow, OracleCache, OracleCacheError
from molvae.chem.constraints import Constraint, parse_constraint, parse_constraints, violated
from molvae.chem.molecules import canonical, parse
from molvae.chem.objectives import Objective, get_objective

if TYPE_CHECKING:
    from rdkit.Chem import Mol

Row = tuple[float, str, str, float]  # score, status, error, seconds
Sink = Callable[[int, list[Row]], None]  # (offset into the list being scored, finished rows)
FLUSH_ROWS, FLUSH_SECONDS = 1000, 1.0  # serial scoring hands finished rows over this often


@lru_cache(maxsize=16)
def _cached_objective(spec: str) -> Objective:
    """Per-process cache so pool workers rebuild each objective only once."""
    return get_objective(spec)


@dataclass
class ScoreResult:
    """Scores of a list of SMILES, aligned with the input.

    ``scores``: float array (NaN where neither ok nor infeasible); ``status``: "ok" |
    "infeasible" (scored, but a constraint does not hold) | "invalid" | "failed"; ``error``: ""
    or a short message (for "infeasible": the constraints missed); ``seconds``: float array,
    the wall time spent on each entry's objective call in this call (0 for invalid SMILES and
    for entries not computed); ``cached``: True where the outcome was not computed for this
    entry: found in the oracle cache, or an earlier entry of the same call was the same molecule.
    """

    scores: np.ndarray
    status: list[str] = field(default_factory=list)
    error: list[str] = field(default_factory=list)
    seconds: np.ndarray = field(default_factory=lambda: np.zeros(0))
    cached: list[bool] = field(default_factory=list)

    def __post_init__(self) -> None:
        # results built by older callers (three fields) stay aligned
        self.seconds = np.asarray(self.seconds, dtype=float)
        if len(self.seconds) != len(self.status):
            self.seconds = np.zeros(len(self.status))
        if len(self.cached) != len(self.status):
            self.cached = [False] * len(self.status)

    def __len__(self) -> int:
        return len(self.status)

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask of entries whose status is "ok"."""
        return np.array([s == "ok" for s in self.status], dtype=bool)


def call_objective(fn: Callable[[Mol], float], mol: Mol) -> Row:
    """The objective's raw outcome on ``mol``: (value, "ok" | "failed", the reason it failed,
    seconds); whatever ``fn`` raises or returns, a row, never an exception."""
    start = time.perf_counter()
    try:
        value = fn(mol)
    except Exception as exc:  # a user objective may raise anything; record it, keep going
        return math.nan, "failed", f"{type(exc).__name__}: {exc}"[:200], time.perf_counter() - start
    seconds = time.perf_counter() - start
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if not isinstance(value, numbers.Real):
        why = f"objective returned {type(value).__name__}, not a number"
        return math.nan, "failed", why, seconds
    value = float(value)
    if not math.isfinite(value):
        return math.nan, "failed", f"objective returned {value}", seconds
    return value, "ok", "", seconds


def _constrain(mol: Mol, row: Row, constraints: Sequence[Constraint]) -> Row:
    """An "ok" row becomes "infeasible" (score kept) if ``mol`` misses a constraint."""
    missed = violated(mol, constraints) if row[1] == "ok" and constraints else []
    return (row[0], "infeasible", "; ".join(missed)[:200], row[3]) if missed else row


def _score_one(
    smiles: Any, fn: Callable[[Mol], float], constraints: Sequence[Constraint] = ()
) -> Row:
    mol = parse(smiles)
    if mol is None:
        return math.nan, "invalid", "invalid SMILES", 0.0
    return _constrain(mol, call_objective(fn, mol), constraints)


@lru_cache(maxsize=16)
def _cached_constraints(specs: tuple[str, ...]) -> tuple[Constraint, ...]:
    return parse_constraints(specs)


def _score_chunk(
    smiles: list[str], objective: str | Objective, constraints: tuple[str, ...] = ()
) -> list[Row]:
    obj = _cached_objective(objective) if isinstance(objective, str) else objective
    cons = _cached_constraints(constraints)
    return [_score_one(s, obj.fn, cons) for s in smiles]


def score_smiles(
    smiles: Sequence[str],
    objective: str | Objective,
    n_jobs: int = 1,
    constraints: Sequence[str | Constraint] = (),
    cache: OracleCache | str | os.PathLike | None = None,
    executor: Executor | None = None,
) -> ScoreResult:
    """Score each SMILES with ``objective``; never raises for a bad molecule or objective value.

    Invalid SMILES get status "invalid"; an objective that raises or returns NaN/inf/non-number
    gets "failed" with the message; a molecule that misses one of ``constraints`` (specs or
    `molvae.chem.constraints.Constraint`) keeps its score with status "infeasible". ``n_jobs >
    1`` scores chunks in a process pool (workers rebuild string objectives and constraints from
    their specs). A bad objective or constraint spec raises ``ValueError``.

    ``cache`` (an `OracleCache` or its file): each molecule is looked up by (``objective.name``,
    ``objective.version``, canonical SMILES); only the misses are computed, once per molecule,
    on the canonical SMILES, and their "ok"/"failed" outcomes are stored as they finish.
    Constraints are applied to hits and misses alike. A cache that cannot be written warns and
    the scores are still returned.

    ``executor`` (e.g. a Dask cluster's, `molvae.chem.distributed.connect`): one task per
    molecule, so every worker stays busy and a lost worker costs one molecule's call (Dask runs
    it again elsewhere); ``n_jobs`` is ignored and the executor is left open.
    """
    smiles = list(smiles)
    given = [c if isinstance(c, Constraint) else parse_constraint(c) for c in constraints]
    cons = tuple({c.spec: c for c in given}.values())  # once per spec, in order
    specs = tuple(c.spec for c in cons)  # what workers rebuild them from
    obj = get_objective(objective) if isinstance(objective, str) else objective
    payload: str | Objective = objective.strip() if isinstance(objective, str) else obj
    if executor is None and n_jobs > 1 and len(smiles) > 1 and not isinstance(payload, str):
        try:
            pickle.dumps(payload)
        except Exception:  # lambdas and closures cannot reach workers
            warnings.warn(
                "objective cannot be pickled; scoring in this process", RuntimeWarning, stacklevel=2
            )
            n_jobs = 1

    def compute(todo: list[str], sink: Sink | None = None) -> list[Row]:
        if executor is not None or (n_jobs > 1 and len(todo) > 1):
            return _score_parallel(todo, payload, n_jobs, specs, sink, executor)
        return _score_serial(todo, obj.fn, cons, sink)

    if cache is None:
        rows, cached = compute(smiles), [False] * len(smiles)
    elif isinstance(cache, OracleCache):
        rows, cached = _score_with_cache(smiles, obj, cons, compute, cache)
    else:
        with OracleCache(cache) as opened:
            rows, cached = _score_with_cache(smiles, obj, cons, compute, opened)
    return ScoreResult(
        scores=np.array([r[0] for r in rows], dtype=float),
        status=[r[1] for r in rows],
        error=[r[2] for r in rows],
        seconds=np.array([r[3] for r in rows], dtype=float),
        cached=cached,
    )


def _score_with_cache(
    smiles: list[str],
    obj: Objective,
    cons: tuple[Constraint, ...],
    compute: Callable[[list[str], Sink | None], list[Row]],
    cache: OracleCache,
) -> tuple[list[Row], list[bool]]:
    keys = [canonical(s) for s in smiles]  # None: does not parse, so nothing to store or look up
    hits = cache.get_many(obj.name, obj.version, (k for k in keys if k is not None))
    todo = list(dict.fromkeys(k for k in keys if k is not None and k not in hits))
    computed = dict(zip(todo, compute(todo, _Store(cache, obj, todo)), strict=True))
    rows: list[Row] = []
    cached: list[bool] = []
    seen: set[str] = set()
    for s, key in zip(smiles, keys, strict=True):
        if key is None:
            rows.append(_score_one(s, obj.fn, cons))  # costs nothing: "invalid" at the parse
            cached.append(False)
        elif key in hits:
            rows.append(_from_cache(key, hits[key], cons))
            cached.append(True)
        else:  # the same molecule again in this call: computed once, its time counted once
            again = key in seen
            seen.add(key)
            rows.append((*computed[key][:3], 0.0) if again else computed[key])
            cached.append(again)
    return rows, cached


def _from_cache(smiles: str, hit: CachedScore, cons: Sequence[Constraint]) -> Row:
    """A stored outcome as a row of this call: its constraints re-applied, no time spent."""
    if hit.status != "ok":
        return math.nan, "failed", hit.reason, 0.0
    mol = parse(smiles) if cons else None
    row = (hit.score, "ok", "", 0.0)
    return row if mol is None else _constrain(mol, row, cons)


class _Store:
    """The sink that stores computed outcomes as they finish (raw: "infeasible" was "ok" before
    this call's constraints; "invalid" is never stored). A cache that cannot be written warns
    once; the scores are still returned."""

    def __init__(self, cache: OracleCache, obj: Objective, keys: list[str]):
        self.cache, self.obj, self.keys, self.broken = cache, obj, keys, False

    def __call__(self, offset: int, rows: list[Row]) -> None:
        keys = self.keys[offset : offset + len(rows)]
        new = [
            CacheRow(self.obj.name, self.obj.version, key, score, "failed", error, seconds)
            if status == "failed"
            else CacheRow(self.obj.name, self.obj.version, key, score, "ok", "", seconds)
            for key, (score, status, error, seconds) in zip(keys, rows, strict=True)
            if status != "invalid"
        ]
        if self.broken or not new:
            return
        try:
            self.cache.put_many(new)
        except OracleCacheError as exc:
            self.broken = True
            warnings.warn(f"not stored in the oracle cache: {exc}", RuntimeWarning, stacklevel=2)


def _score_serial(
    smiles: list[str], fn: Callable[[Mol], float], cons: Sequence[Constraint], sink: Sink | None
) -> list[Row]:
    rows: list[Row] = []
    done, last = 0, time.monotonic()
    for s in smiles:
        rows.append(_score_one(s, fn, cons))
        # a slow objective's rows are handed over about every second, so a kill loses little
        due = len(rows) - done >= FLUSH_ROWS or time.monotonic() - last >= FLUSH_SECONDS
        if sink is not None and due:
            sink(done, rows[done:])
            done, last = len(rows), time.monotonic()
    if sink is not None and done < len(rows):
        sink(done, rows[done:])
    return rows


def _score_parallel(
    smiles: list[str],
    payload: str | Objective,
    n_jobs: int,
    constraints: tuple[str, ...] = (),
    sink: Sink | None = None,
    executor: Executor | None = None,
) -> list[Row]:
    # A few chunks per local worker balance slow molecules without paying pickling per molecule;
    # on a cluster, one molecule per task: its workers are many and its objectives slow.
    n_chunks = len(smiles) if executor is not None else min(len(smiles), n_jobs * 4)
    bounds = np.linspace(0, len(smiles), n_chunks + 1).astype(int)
    chunks = [smiles[a:b] for a, b in itertools.pairwise(bounds)]
    done: dict[int, list[Row]] = {}
    with contextlib.ExitStack() as stack:
        pool = executor or stack.enter_context(ProcessPoolExecutor(max_workers=n_jobs))
        futures = {
            pool.submit(_score_chunk, c, payload, constraints): i for i, c in enumerate(chunks)
        }
        for future in as_completed(futures):  # handed over as they finish, not in order
            i = futures[future]
            try:
                done[i] = future.result()
            except Exception as exc:  # a crashed worker fails its chunk, not the whole call
                msg = f"worker failed: {type(exc).__name__}: {exc}"[:200]
                done[i] = [(math.nan, "failed", msg, 0.0)] * len(chunks[i])
            else:
                if sink is not None:  # never a crashed worker's rows: not the objective's outcome
                    sink(int(bounds[i]), done[i])
    return [row for i in range(len(chunks)) for row in done[i]]
