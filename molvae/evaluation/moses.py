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
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from typing import Any

import numpy as np

from molvae import chem

# MOSES's medicinal chemistry filters (``moses/metrics/mcf.csv``, molecularsets/moses, MIT).
MCF_SMARTS = (
    "[#6]=&!@[#6]-[#6]#[#7]",
    "[#6]=&!@[#6]-[#16](=[#8])=[#8]",
    "[#6]=&!@[#6&!H0]-&!@[#6](=[#8])-&!@[#7]",
    "[H]C([H])([#6])[F,Cl,Br,I]",
    "[#6]1-[#8]-[#6]-1",
    "[#6]-[#7]=[#6]=[#8]",
    "[#6&!H0]=[#8]",
    "[#6](=&!@[#7&!H0])-&!@[#6,#7,#8,#16]",
    "[#6]1-[#7]-[#6]-1",
    "[#6]~&!@[#7]~&!@[#7]~&!@[#6]",
    "[#7]=&!@[#7]",
    "[H][#6]-1=[#6]([H])-[#6]=[#6](-*)-[#8]-1",
    "[H][#6]-1=[#6]([H])-[#6]=[#6](-*)-[#16]-1",
    "[#17,#35,#53]-c(:*):[!#1!#6]:*",
    "[H][#7]([H])-[#6]-1=[#6]-[#6]=[#6]-[#6]=[#6]-1",
    "[#16]~[#16]",
    "[#7]~&!@[#7]~&!@[#7]",
    "[#7]-&!@[#6&!H0&!H1]-&!@[#7]",
    "[#6&!H0](-&!@[#8])-&!@[#8]",
    "[#35].[#35].[#35]",
    "[#17].[#17].[#17].[#17]",
    "[#9].[#9].[#9].[#9].[#9].[#9].[#9]",
)
ALLOWED_ATOMS = frozenset({"C", "N", "S", "O", "F", "Cl", "Br", "H"})
PROPERTY_NAMES = ("logP", "SAS", "QED", "MW")
MIN_PARALLEL = 2000  # fewer molecules than this are not worth starting worker processes


@lru_cache(maxsize=1)
def _filters() -> tuple[list[Any], np.ndarray]:
    """The MCF and PAINS query molecules (PAINS: RDKit's ``wehi_pains.csv``, the file MOSES
    ships) and their packed pattern fingerprints, for a screen before each substructure match."""
    import csv

    from rdkit import Chem, RDConfig

    with open(os.path.join(RDConfig.RDDataDir, "Pains", "wehi_pains.csv")) as fh:
        pains = [row[0] for row in csv.reader(fh) if row]
    queries = [Chem.MolFromSmarts(s) for s in (*MCF_SMARTS, *pains)]
    screens = np.stack([_pattern_bits(q) for q in queries])
    return queries, screens


def _pattern_bits(mol: Any) -> np.ndarray:
    from rdkit import Chem, DataStructs

    fp = Chem.PatternFingerprint(mol)
    bits = np.zeros(fp.GetNumBits(), dtype=np.uint8)
    DataStructs.ConvertToNumpyArray(fp, bits)
    return np.packbits(bits.astype(bool))


def passes_filters(mol: Any) -> bool:
    """MOSES ``mol_passes_filters``: rings, charges, allowed atoms, MCF and PAINS.

    A query is matched only when the molecule's pattern fingerprint holds all of its bits
    (RDKit's substructure screen: never skips a match), 4-5x faster than matching them all.
    """
    from rdkit import Chem

    if mol is None:
        return False
    ring_info = mol.GetRingInfo()
    if any(len(ring) >= 8 for ring in ring_info.AtomRings()):
        return False
    atoms = mol.GetAtoms()
    if any(a.GetFormalCharge() != 0 or a.GetSymbol() not in ALLOWED_ATOMS for a in atoms):
        return False
    queries, screens = _filters()
    h_mol = Chem.AddHs(mol)
    candidates = np.flatnonzero(~(screens & ~_pattern_bits(h_mol)).any(axis=1))
    if any(h_mol.HasSubstructMatch(queries[i]) for i in candidates):
        return False
    smiles = Chem.MolToSmiles(mol, isomericSmiles=False)
    return bool(smiles) and Chem.MolFromSmiles(smiles) is not None


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
