"""Per-molecule MOSES quantities, as ``moses/metrics/utils.py`` defines them, and Frag/Scaf.

* fragments: ``Chem.MolToSmiles(FragmentOnBRICSBonds(mol)).split(".")``, counted with
  multiplicity (a molecule with two identical BRICS fragments adds 2);
* scaffold: canonical SMILES of the Bemis-Murcko scaffold, only when it has at least 2 rings;
* filters: no ring of 8 or more atoms, no charge, atoms in C N S O F Cl Br H, and no match of
  the MCF or PAINS patterns on the molecule with explicit hydrogens;
* Frag and Scaf: cosine similarity of the fragment (scaffold) count vectors of two sets.

``describe`` computes these with logP, SA score, QED and molecular weight (MOSES's property
functions) for one canonical SMILES; ``describe_all`` runs it in worker processes.
Imports nothing heavy at module level: worker processes start fast.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

from molvae import chem
from molvae.chem.filters import passes_filters

PROPERTY_NAMES = ("logP", "SAS", "QED", "MW")
MIN_PARALLEL = 2000  # fewer molecules than this are not worth starting worker processes


def fragments(mol: Any) -> list[str]:
    """MOSES ``fragmenter``: SMILES of the pieces left by cutting every BRICS bond."""
    from rdkit import Chem

    return Chem.MolToSmiles(Chem.FragmentOnBRICSBonds(mol)).split(".")


def scaffold(mol: Any, min_rings: int = 2) -> str | None:
    """MOSES ``compute_scaffold``: the Bemis-Murcko scaffold's SMILES, None under ``min_rings``."""
    from rdkit import Chem
    from rdkit.Chem.Scaffolds import MurckoScaffold

    try:
        scaf = MurckoScaffold.GetScaffoldForMol(mol)
    except (ValueError, RuntimeError):
        return None
    smiles = Chem.MolToSmiles(scaf)
    if not smiles or scaf.GetRingInfo().NumRings() < min_rings:
        return None
    return smiles


def cos_similarity(ref: Mapping[str, int], gen: Mapping[str, int]) -> float:
    """MOSES ``cos_similarity``: cosine of two count vectors over the union of their keys.

    NaN when either is empty.
    """
    if not ref or not gen:
        return math.nan
    keys = sorted(set(ref) | set(gen))
    r = np.array([ref.get(k, 0) for k in keys], dtype=np.float64)
    g = np.array([gen.get(k, 0) for k in keys], dtype=np.float64)
    return float(r @ g / (np.linalg.norm(r) * np.linalg.norm(g)))


def describe(
    smiles: str, properties: bool = True, filters: bool = True, structure: bool = True
) -> dict[str, Any]:
    """Fragments and scaffold (``structure``), filters and properties of one valid SMILES."""
    mol = chem.parse(smiles)
    if mol is None:
        raise ValueError(f"not a valid molecule: {smiles!r}")
    row: dict[str, Any] = {}
    if structure:
        row.update(fragments=fragments(mol), scaffold=scaffold(mol))
    if filters:
        row["filters"] = passes_filters(mol)
    if properties:
        from rdkit.Chem import QED

        props = QED.properties(mol)  # ALOGP is Crippen MolLogP, MW is MolWt: MOSES's logP, MW
        row.update(
            logP=props.ALOGP, SAS=chem.sa_score(mol), QED=QED.qed(mol, qedProperties=props),
            MW=props.MW,
        )  # fmt: skip
    return row


def _describe_chunk(
    smiles: list[str], properties: bool, filters: bool, structure: bool
) -> list[dict[str, Any]]:
    chem.silence_rdkit()
    return [describe(s, properties, filters, structure) for s in smiles]


def _canonical_chunk(smiles: list[str]) -> list[str | None]:
    chem.silence_rdkit()
    return [chem.canonical(s) for s in smiles]


def map_chunks(fn: Callable[..., list], items: Sequence[Any], n_jobs: int, *args: Any) -> list:
    """``fn(chunk, *args)`` over chunks of ``items``, in ``n_jobs`` worker processes when there
    are enough items to pay for them; results concatenated in input order."""
    items = list(items)
    if n_jobs <= 1 or len(items) < MIN_PARALLEL:
        return fn(items, *args)
    bounds = np.linspace(0, len(items), n_jobs * 8 + 1).astype(int)
    chunks = [items[a:b] for a, b in itertools.pairwise(bounds)]
    with ProcessPoolExecutor(max_workers=n_jobs) as pool:
        futures = [pool.submit(fn, c, *args) for c in chunks]
        return [row for f in futures for row in f.result()]


def describe_all(
    smiles: Sequence[str],
    properties: bool = True,
    filters: bool = True,
    structure: bool = True,
    n_jobs: int = 1,
) -> list[dict[str, Any]]:
    """``describe`` of each SMILES, in ``n_jobs`` worker processes when there are many."""
    return map_chunks(_describe_chunk, smiles, n_jobs, properties, filters, structure)


def canonical_all(smiles: Sequence[str], n_jobs: int = 1) -> list[str | None]:
    """``chem.canonical`` of each SMILES (None where invalid), in worker processes if many."""
    return map_chunks(_canonical_chunk, smiles, n_jobs)


def count(rows: Sequence[Mapping[str, Any]], key: str) -> Counter:
    """Fragment (``key="fragments"``) or scaffold (``"scaffold"``) counts over described rows."""
    counts: Counter = Counter()
    for row in rows:
        value = row[key]
        if isinstance(value, list):
            counts.update(value)
        elif value is not None:
            counts[value] += 1
    return counts
