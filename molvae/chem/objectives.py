"""The objective registry and scoring of SMILES lists, in this process or a process pool.

Objectives are always *maximized*. ``get_objective`` accepts a registry name (``logp``, ``qed``,
``sa``, ``mw``, ``tpsa``, ``plogp``, ``plogp_raw``, ``qed_sa``), ``similarity:<SMILES>``,
``pmo:<task>`` (the PMO benchmark's oracles, `molvae.chem.pmo`; needs ``make pmo-install``) or a
user ``module:function`` whose function takes a ``Mol`` and returns a float.
"""

from __future__ import annotations

import importlib
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
from rdkit import DataStructs

from molvae.chem.constraints import Constraint, parse_constraint, parse_constraints, violated
from molvae.chem.molecules import parse
from molvae.chem.pmo import PMO_TASKS, PMOScore, import_tdc
from molvae.chem.properties import (
    logp,
    mol_weight,
    morgan_fingerprint,
    penalized_logp,
    penalized_logp_raw,
    qed,
    sa_score,
    tpsa,
)

if TYPE_CHECKING:
    from rdkit.Chem import Mol


# --------------------------------------------------------------------------- objectives


@dataclass(frozen=True)
class Objective:
    """A score to maximize. ``name`` is the spec that rebuilds it through ``get_objective``."""

    name: str
    description: str
    fn: Callable[[Mol], float]


def neg_sa_score(mol: Mol) -> float:
    """``-SA`` so that higher is better (easier to synthesize)."""
    return -sa_score(mol)


def qed_minus_sa(mol: Mol) -> float:
    """``5 * QED - SA``, the objective of Gómez-Bombarelli et al. 2018."""
    return 5.0 * qed(mol) - sa_score(mol)


class TanimotoTo:
    """Picklable callable: Tanimoto similarity (Morgan r2, 2048 bits) to a fixed target."""

    def __init__(self, target_smiles: str):
        target = parse(target_smiles)
        if target is None:
            raise ValueError(f"similarity target {target_smiles!r} is not a valid SMILES string")
        self.target_smiles = target_smiles
        self._target_fp = morgan_fingerprint(target)

    def __call__(self, mol: Mol) -> float:
        return float(DataStructs.TanimotoSimilarity(morgan_fingerprint(mol), self._target_fp))

    def __reduce__(self) -> tuple[Any, ...]:
        return (TanimotoTo, (self.target_smiles,))


OBJECTIVES: dict[str, Objective] = {
    o.name: o
    for o in (
        Objective("logp", "Crippen logP", logp),
        Objective("qed", "QED drug-likeness in [0, 1]", qed),
        Objective("sa", "negated SA score (-SA, higher = easier to synthesize)", neg_sa_score),
        Objective("mw", "molecular weight in Da", mol_weight),
        Objective("tpsa", "topological polar surface area in Å²", tpsa),
        Objective("plogp", "penalized logP, standardized with ZINC-250k constants", penalized_logp),
        Objective("plogp_raw", "penalized logP, raw: logP - SA - ring penalty", penalized_logp_raw),
        Objective("qed_sa", "5 * QED - SA (Gómez-Bombarelli et al. 2018)", qed_minus_sa),
    )
}


def available_objectives() -> dict[str, str]:
    """Registry names and their descriptions, then the ``pmo:<task>`` specs
    (``similarity:<SMILES>`` and ``module:function`` are accepted by ``get_objective`` as well)."""
    names = {name: o.description for name, o in OBJECTIVES.items()}
    return names | {f"pmo:{task}": _pmo_description(task) for task in PMO_TASKS}


def _pmo_description(task: str) -> str:
    return f"PMO benchmark task {task} (PyTDC oracle, in [0, 1])"


def get_objective(spec: str) -> Objective:
    """Resolve a registry name, ``similarity:<SMILES>`` or a user ``module:function``.

    Raises ``ValueError`` with one clear sentence for an unknown name, an invalid similarity
    target or a module/function that cannot be imported.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"an objective spec must be a non-empty string, got {spec!r}")
    spec = spec.strip()
    if spec in OBJECTIVES:
        return OBJECTIVES[spec]
    prefix, sep, rest = spec.partition(":")
    if sep and prefix == "similarity":
        fn = TanimotoTo(rest.strip())
        return Objective(spec, f"Tanimoto similarity (Morgan r2, 2048 bits) to {rest.strip()}", fn)
    if sep and prefix == "pmo":
        pmo = PMOScore(rest)  # an unknown task: ValueError listing the tasks
        import_tdc()  # not installed: one sentence now, not a "failed" row per molecule later
        return Objective(f"pmo:{pmo.task}", _pmo_description(pmo.task), pmo)
    if sep:
        return Objective(spec, f"user objective {spec}", _import_function(prefix, rest))
    names = ", ".join(OBJECTIVES)
    raise ValueError(
        f"unknown objective {spec!r}; choose one of {names}, "
        "or give 'similarity:<SMILES>', 'pmo:<task>' or a 'module:function'"
    )


def _import_function(module_name: str, function_name: str) -> Callable[[Mol], float]:
    spec = f"{module_name}:{function_name}"
    if not module_name or not function_name:
        raise ValueError(f"objective {spec!r} must have the form 'module:function'")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time error of user code is reported the same way
        raise ValueError(
            f"could not import module {module_name!r} for objective {spec!r} ({exc})"
        ) from exc
    fn = getattr(module, function_name, None)
    if not callable(fn):
        raise ValueError(f"module {module_name!r} has no callable {function_name!r}")
    return fn


@lru_cache(maxsize=16)
def _cached_objective(spec: str) -> Objective:
    """Per-process cache so pool workers rebuild each objective only once."""
    return get_objective(spec)


# --------------------------------------------------------------------------- scoring


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
