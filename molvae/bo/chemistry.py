"""The campaign callables backed by ``molvae.chem``: RDKit canonical SMILES and objectives.

The loop takes any ``CanonicalFn`` / ``ObjectiveFn``; these are the defaults the runs use.
"""

from __future__ import annotations

import numpy as np

from molvae.bo.config import CanonicalFn, ObjectiveFn
from molvae.chem import canonical, get_objective, score_smiles


def chem_objective(spec: str, n_jobs: int = 1) -> ObjectiveFn:
    """An ``ObjectiveFn`` scoring with ``molvae.chem``: objective ``spec``, ``n_jobs`` processes."""
    objective = get_objective(spec)

    def score(smiles: list[str]) -> tuple[np.ndarray, list[str]]:
        result = score_smiles(smiles, objective, n_jobs)
        return np.asarray(result.scores, dtype=float), list(result.status)

    return score


def default_canonical() -> CanonicalFn:
    """``molvae.chem.canonical``, the ``CanonicalFn`` used when a campaign is given none."""
    return canonical
