"""Molecular properties of an RDKit ``Mol``: logP, QED, SA score, penalized logP and friends.

The SA-score contrib module and pandas load on first use, not at import.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Callable, Sequence
from functools import lru_cache
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
from rdkit import Chem, DataStructs, RDConfig
from rdkit.Chem import (
    QED,
    Crippen,
    Descriptors,
    rdFingerprintGenerator,
    rdMolDescriptors,
    rdmolops,
)

from molvae.chem.molecules import parse

if TYPE_CHECKING:
    import pandas as pd
    from rdkit.Chem import Mol


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


def morgan_counts(mol: Mol, fp_size: int = 2048) -> np.ndarray:
    """Morgan radius-2 count fingerprint of ``mol``: how often each of ``fp_size`` hashed
    environments occurs (uint32)."""
    return _morgan_generator(fp_size).GetCountFingerprintAsNumPy(mol)


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


@lru_cache(maxsize=1)
def _networkx() -> ModuleType:
    import networkx  # ships with torch; imported on first use (0.2 s)

    return networkx


def ring_penalty(mol: Mol) -> float:
    """``max(0, largest ring size - 6)`` over the cycle basis of the molecular graph.

    The cycle basis of networkx (``cycle_basis`` of the graph built from RDKit's adjacency
    matrix), as in the code of Kusner et al. 2017 reused by JT-VAE, whose ZINC-250k constants
    standardize this term. RDKit's SSSR rings differ on bridged polycycles (adamantane: SSSR
    rings of 6, a basis cycle of 8, so 0 against 2; 0.4% of ZINC-250k molecules differ).
    0 for acyclic molecules.
    """
    nx = _networkx()
    cycles = nx.cycle_basis(nx.Graph(rdmolops.GetAdjacencyMatrix(mol)))
    largest = max((len(c) for c in cycles), default=0)
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
