"""A desirability in [0, 1] for the multi-objective benchmark (`multi_objective.py`), importable
as ``mo_objectives:<function>`` objectives by campaigns and their scoring processes.

Every objective of the benchmark lies in [0, 1] (1 best), so the hypervolume's reference point
is the origin for every task and method, and Graph GA's scalarization is their product.
"""

from __future__ import annotations

from rdkit.Chem import Mol

from molvae.chem.properties import sa_score


def sa_desirability(mol: Mol) -> float:
    """``(10 - SA) / 9``: 1 for the easiest molecule to make (SA 1), 0 for the hardest (SA 10)."""
    return (10.0 - sa_score(mol)) / 9.0
