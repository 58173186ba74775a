"""RDKit chemistry: parsing, canonical SMILES, properties and the objective registry.

Everything here is a pure function of a SMILES string or an RDKit ``Mol``; nothing heavy runs at
import time (the SA-score contrib module and pandas load on first use). Knows nothing of torch.

Objectives are always *maximized*. ``get_objective`` accepts a registry name (``logp``, ``qed``,
``sa``, ``mw``, ``tpsa``, ``plogp``, ``plogp_raw``, ``qed_sa``), ``similarity:<SMILES>`` or a
user ``module:function`` whose function takes a ``Mol`` and returns a float.
"""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import math
import numbers
import os
import pickle
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
from rdkit import Chem, DataStructs, RDConfig, RDLogger
from rdkit.Chem import QED, Crippen, Descriptors, rdFingerprintGenerator, rdMolDescriptors

if TYPE_CHECKING:
    import pandas as pd
    from rdkit.Chem import Mol


def silence_rdkit() -> None:
    """Disable RDKit's log output (parse errors of invalid decodes would flood the console)."""
    RDLogger.DisableLog("rdApp.*")


silence_rdkit()


# --------------------------------------------------------------------------- parsing


def parse(smiles: Any) -> Mol | None:
    """Parse a SMILES string into a ``Mol``; ``None`` for invalid, empty or non-string input.

    Never raises.
    """
    if not isinstance(smiles, str) or not smiles.strip():
        return None
    try:
        mol = Chem.MolFromSmiles(smiles)
    except Exception:  # RDKit raises on some malformed inputs instead of returning None
        return None
    if mol is None or mol.GetNumAtoms() == 0:
        return None
    return mol


def canonical(smiles: Any) -> str | None:
    """Canonical isomeric SMILES of ``smiles``, or ``None`` if it does not parse."""
    mol = parse(smiles)
    if mol is None:
        return None
    try:
        return Chem.MolToSmiles(mol, isomericSmiles=True)
    except Exception:  # writing can fail on exotic valence states that parsed
        return None


def is_valid(smiles: Any) -> bool:
    """True if ``smiles`` parses into a molecule with at least one atom."""
    return parse(smiles) is not None


def largest_fragment(smiles: Any) -> str | None:
    """Canonical SMILES of the largest fragment (most heavy atoms) of a salt or mixture."""
    mol = parse(smiles)
    if mol is None:
        return None
    frags = Chem.GetMolFrags(mol, asMols=True, sanitizeFrags=False)
    best = max(frags, key=lambda m: (m.GetNumHeavyAtoms(), m.GetNumAtoms()))
    return Chem.MolToSmiles(best, isomericSmiles=True)


# --------------------------------------------------------------------------- properties

# ZINC-250k means and standard deviations of logP, -SA and -ring penalty, from the code of
# Kusner et al. 2017 (Grammar VAE) reused by Jin et al. 2018 (JT-VAE, bo/run_bo.py).
LOGP_MEAN, LOGP_STD = 2.4570953396190123, 1.434324401111988
NEG_SA_MEAN, NEG_SA_STD = -3.0525811293166134, 0.8335207024513095
NEG_RING_MEAN, NEG_RING_STD = -0.0485696876403053, 0.2860212110245455


@lru_cache(maxsize=1)
def _sascorer() -> ModuleType:
    """Load RDKit Contrib's ``sascorer`` once, from its file (no sys.path edits)."""
    path = os.path.join(RDConfig.RDContribDir, "SA_Score", "sascorer.py")
    spec = importlib.util.spec_from_file_location("sascorer", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"RDKit's SA_Score contrib module was not found at {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@lru_cache(maxsize=2)
def _morgan_generator(fp_size: int) -> Any:
    return rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=fp_size)


def morgan_fingerprint(mol: Mol, fp_size: int = 2048) -> DataStructs.ExplicitBitVect:
    """Morgan radius-2 bit fingerprint of ``mol`` with ``fp_size`` bits."""
    return _morgan_generator(fp_size).GetFingerprint(mol)


def logp(mol: Mol) -> float:
    """Crippen logP (Wildman & Crippen 1999), ``Crippen.MolLogP``."""
    return float(Crippen.MolLogP(mol))


def qed(mol: Mol) -> float:
    """Quantitative estimate of drug-likeness (Bickerton et al. 2012), in [0, 1]."""
    return float(QED.qed(mol))


def sa_score(mol: Mol) -> float:
    """Synthetic accessibility score (Ertl & Schuffenhauer 2009): 1 (easy) to 10 (hard)."""
    return float(_sascorer().calculateScore(mol))


def mol_weight(mol: Mol) -> float:
    """Average molecular weight in Da."""
    return float(Descriptors.MolWt(mol))


def tpsa(mol: Mol) -> float:
    """Topological polar surface area (Ertl et al. 2000) in Å²."""
    return float(rdMolDescriptors.CalcTPSA(mol))


def ring_penalty(mol: Mol) -> float:
    """``max(0, largest ring size - 6)`` over RDKit's SSSR rings (0 for acyclic molecules)."""
    rings = mol.GetRingInfo().AtomRings()
    largest = max((len(r) for r in rings), default=0)
    return float(max(0, largest - 6))


def penalized_logp(mol: Mol) -> float:
    """Standardized penalized logP: z(logP) + z(-SA) + z(-ring penalty).

    Each term is z-scored with ZINC-250k constants from the code of Kusner et al. 2017
    (Grammar VAE) as reused by Jin et al. 2018 (JT-VAE); this is the variant their latent BO
    tables report (see REFERENCES.md). For the unnormalized sum use ``penalized_logp_raw``.
    """
    return (
        (logp(mol) - LOGP_MEAN) / LOGP_STD
        + (-sa_score(mol) - NEG_SA_MEAN) / NEG_SA_STD
        + (-ring_penalty(mol) - NEG_RING_MEAN) / NEG_RING_STD
    )


def penalized_logp_raw(mol: Mol) -> float:
    """Unnormalized penalized logP: ``logP - SA - ring penalty`` (as in e.g. Tripp et al. 2020)."""
    return logp(mol) - sa_score(mol) - ring_penalty(mol)


def tanimoto_similarity(mol: Mol, target_mol: Mol) -> float:
    """Tanimoto similarity of Morgan radius-2, 2048-bit fingerprints, in [0, 1]."""
    return float(
        DataStructs.TanimotoSimilarity(morgan_fingerprint(mol), morgan_fingerprint(target_mol))
    )


PROPERTIES: dict[str, Callable[[Mol], float]] = {
    "logp": logp,
    "qed": qed,
    "sa_score": sa_score,
    "mol_weight": mol_weight,
    "tpsa": tpsa,
    "ring_penalty": ring_penalty,
    "penalized_logp": penalized_logp,
    "penalized_logp_raw": penalized_logp_raw,
}


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
    """Registry names and their descriptions (``similarity:<SMILES>`` and ``module:function``
    are accepted by ``get_objective`` as well)."""
    return {name: o.description for name, o in OBJECTIVES.items()}


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
    if sep:
        return Objective(spec, f"user objective {spec}", _import_function(prefix, rest))
    names = ", ".join(OBJECTIVES)
    raise ValueError(
        f"unknown objective {spec!r}; choose one of {names}, "
        "or give 'similarity:<SMILES>' or a 'module:function'"
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

    ``scores``: float array (NaN where not ok); ``status``: "ok" | "invalid" | "failed";
    ``error``: "" or a short message.
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


def _score_one(smiles: Any, fn: Callable[[Mol], float]) -> tuple[float, str, str]:
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
    return value, "ok", ""


def _score_chunk(smiles: list[str], objective: str | Objective) -> list[tuple[float, str, str]]:
    obj = _cached_objective(objective) if isinstance(objective, str) else objective
    return [_score_one(s, obj.fn) for s in smiles]


def score_smiles(smiles: Sequence[str], objective: str | Objective, n_jobs: int = 1) -> ScoreResult:
    """Score each SMILES with ``objective``; never raises for a bad molecule or objective value.

    Invalid SMILES get status "invalid"; an objective that raises or returns NaN/inf/non-number
    gets "failed" with the message. ``n_jobs > 1`` scores chunks in a process pool (workers
    rebuild string objectives from their spec). A bad objective spec raises ``ValueError``.
    """
    smiles = list(smiles)
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
        rows = _score_parallel(smiles, payload, n_jobs)
    else:
        rows = [_score_one(s, obj.fn) for s in smiles]
    return ScoreResult(
        scores=np.array([r[0] for r in rows], dtype=float),
        status=[r[1] for r in rows],
        error=[r[2] for r in rows],
    )


def _score_parallel(
    smiles: list[str], payload: str | Objective, n_jobs: int
) -> list[tuple[float, str, str]]:
    # A few chunks per worker balance slow molecules without paying pickling per molecule.
    n_chunks = min(len(smiles), n_jobs * 4)
    bounds = np.linspace(0, len(smiles), n_chunks + 1).astype(int)
    chunks = [smiles[a:b] for a, b in itertools.pairwise(bounds)]
    rows: list[tuple[float, str, str]] = []
    with ProcessPoolExecutor(max_workers=n_jobs) as pool:
        futures = [pool.submit(_score_chunk, c, payload) for c in chunks]
        for chunk, future in zip(chunks, futures, strict=True):
            try:
                rows.extend(future.result())
            except Exception as exc:  # a crashed worker fails its chunk, not the whole call
                msg = f"worker failed: {type(exc).__name__}: {exc}"[:200]
                rows.extend((math.nan, "failed", msg) for _ in chunk)
    return rows


def _safe_property(fn: Callable[[Mol], float], mol: Mol | None) -> float:
    if mol is None:
        return math.nan
    try:
        return float(fn(mol))
    except Exception:  # one odd molecule must not lose the whole table
        return math.nan


def property_table(
    smiles: Sequence[str],
    names: Sequence[str] = ("logp", "qed", "sa_score", "mol_weight", "tpsa", "penalized_logp"),
) -> pd.DataFrame:
    """One row per input: ``smiles``, ``canonical``, ``valid`` and one column per property name
    (see ``PROPERTIES``); NaN for invalid molecules."""
    import pandas as pd

    unknown = [n for n in names if n not in PROPERTIES]
    if unknown:
        raise ValueError(f"unknown properties {unknown}; choose from {', '.join(PROPERTIES)}")
    records = []
    for s in smiles:
        mol = parse(s)
        row: dict[str, Any] = {
            "smiles": s,
            "canonical": Chem.MolToSmiles(mol) if mol is not None else None,
            "valid": mol is not None,
        }
        for n in names:
            row[n] = _safe_property(PROPERTIES[n], mol)
        records.append(row)
    return pd.DataFrame.from_records(records, columns=["smiles", "canonical", "valid", *names])
