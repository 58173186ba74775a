"""Parsing and canonical SMILES: RDKit ``Mol`` objects from strings, never raising.

Importing this module silences RDKit's log (parse errors of invalid decodes would flood the
console).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rdkit import Chem, RDLogger

if TYPE_CHECKING:
    from rdkit.Chem import Mol


def silence_rdkit() -> None:
    """Disable RDKit's log output (parse errors of invalid decodes would flood the console)."""
    RDLogger.DisableLog("rdApp.*")


silence_rdkit()


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
