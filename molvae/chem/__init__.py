"""RDKit chemistry: parsing, canonical SMILES, properties and the objective registry.

Owns everything molvae knows about molecules: `molecules` (parse, canonical SMILES),
`properties` (logP, QED, SA score, penalized logP, fingerprints, property tables),
`objectives` (the registry, ``similarity:<SMILES>``, user ``module:function``), `scoring`
(SMILES lists to scores and statuses, in a process pool if asked), `pmo` (``pmo:<task>``: the
PMO benchmark's oracles through PyTDC, imported on first use), `docking` (``dock:<TARGET>``:
-Vina scores through dockstring, each docking in a child process with a timeout),
`filters` (MOSES's sanity filters), `constraints` (``sa<=4.5``, ``filters``, ...) and `cache`
(the oracle cache: objective outcomes in one SQLite file, shared by processes).
Everything is a pure function of a SMILES string or an RDKit ``Mol``; nothing heavy runs at
import time (the SA-score contrib module and pandas load on first use).

Must not import torch, nor any other molvae package except `molvae.io` and `molvae.resources`.
"""

from molvae.chem.cache import (
    CachedScore,
    CacheRow,
    OracleCache,
    OracleCacheError,
    default_cache_path,
)
from molvae.chem.constraints import (
    Constraint,
    constraint_slacks,
    parse_constraint,
    parse_constraints,
)
from molvae.chem.docking import DockingFailed, DockingScore, dock_smiles, dock_targets
from molvae.chem.filters import passes_filters
from molvae.chem.molecules import canonical, is_valid, largest_fragment, parse, silence_rdkit
from molvae.chem.objectives import (
    OBJECTIVES,
    Objective,
    TanimotoTo,
    available_objectives,
    get_objective,
    known_part_values,
    neg_sa_score,
    qed_minus_sa,
)
from molvae.chem.properties import (
    LOGP_MEAN,
    LOGP_STD,
    NEG_RING_MEAN,
    NEG_RING_STD,
    NEG_SA_MEAN,
    NEG_SA_STD,
    PROPERTIES,
    logp,
    mol_weight,
    morgan_fingerprint,
    penalized_logp,
    penalized_logp_raw,
    property_table,
    qed,
    ring_penalty,
    sa_score,
    tanimoto_similarity,
    tpsa,
)
from molvae.chem.scoring import ScoreResult, score_smiles

__all__ = [
    "LOGP_MEAN",
    "LOGP_STD",
    "NEG_RING_MEAN",
    "NEG_RING_STD",
    "NEG_SA_MEAN",
    "NEG_SA_STD",
    "OBJECTIVES",
    "PROPERTIES",
    "CacheRow",
    "CachedScore",
    "Constraint",
    "DockingFailed",
    "DockingScore",
    "Objective",
    "OracleCache",
    "OracleCacheError",
    "ScoreResult",
    "TanimotoTo",
    "available_objectives",
    "canonical",
    "constraint_slacks",
    "default_cache_path",
    "dock_smiles",
    "dock_targets",
    "get_objective",
    "is_valid",
    "known_part_values",
    "largest_fragment",
    "logp",
    "mol_weight",
    "morgan_fingerprint",
    "neg_sa_score",
    "parse",
    "parse_constraint",
    "parse_constraints",
    "passes_filters",
    "penalized_logp",
    "penalized_logp_raw",
    "property_table",
    "qed",
    "qed_minus_sa",
    "ring_penalty",
    "sa_score",
    "score_smiles",
    "silence_rdkit",
    "tanimoto_similarity",
    "tpsa",
]
