"""Substructure flags for the HTML report's filter, precomputed with RDKit.

The page cannot match SMARTS itself (that needs RDKit's MinimalLib, a multi-MB WebAssembly
build we do not inline), so every molecule is matched here against ``COMMON_SUBSTRUCTURES`` and
the caller's SMARTS, and the page filters by those flags only: a pattern not computed when the
report was written cannot be searched in the page.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rdkit import Chem, RDLogger, rdBase

from molvae.io import read_json, write_text

# (readable name, SMARTS): common groups of drug-like molecules, matched as RDKit does
COMMON_SUBSTRUCTURES = (
    ("benzene ring", "c1ccccc1"),
    ("pyridine ring", "c1ccncc1"),
    ("aromatic nitrogen", "n"),
    ("five-membered heteroaromatic ring", "[a;r5;!#6]"),
    ("non-aromatic ring", "[A;R]"),
    ("carboxylic acid", "[CX3](=O)[OX2H1,OX1-]"),
    ("ester", "[#6][CX3](=O)[OX2H0][#6]"),
    ("amide", "[NX3][CX3](=[OX1])[#6]"),
    ("urea", "[NX3][CX3](=[OX1])[NX3]"),
    ("sulfonamide", "[SX4](=[OX1])(=[OX1])[NX3]"),
    ("primary amine", "[NX3;H2;!$(N[C,S]=[O,S,N]);!$(N-a)][#6]"),
    ("secondary amine", "[NX3;H1;!$(N[C,S]=[O,S,N])]([#6])[#6]"),
    ("tertiary amine", "[NX3;H0;!$(N[C,S]=[O,S,N]);!$(N-a)]([#6])([#6])[#6]"),
    ("aniline nitrogen", "[NX3;!$(N[C,S]=[O,S,N])]-c"),
    ("hydroxyl (alcohol)", "[OX2H][CX4]"),
    ("phenol", "[OX2H]c"),
    ("ether", "[OD2;!$(O[C,S]=O)]([#6])[#6]"),
    ("ketone", "[#6][CX3](=O)[#6]"),
    ("aldehyde", "[CX3H1](=O)[#6]"),
    ("nitro", "[$([NX3](=O)=O),$([NX3+](=O)[O-])]"),
    ("nitrile", "[NX1]#[CX2]"),
    ("halogen (F, Cl, Br, I)", "[F,Cl,Br,I]"),
    ("trifluoromethyl", "[CX4](F)(F)F"),
    ("sulfur, divalent (thiol, thioether)", "[SX2]"),
    ("carbon-carbon double bond", "[CX3]=[CX3]"),
)  # fmt: skip


@dataclass(frozen=True)
class Substructure:
    """A named SMARTS pattern; ``user``: given by the caller rather than built in."""

    name: str
    smarts: str
    user: bool = False


def parse_smarts(smarts: str) -> Chem.Mol:
    """The RDKit query of ``smarts``; ValueError (one line) when RDKit cannot parse it."""
    RDLogger.DisableLog("rdApp.*")
    query = Chem.MolFromSmarts(smarts) if smarts and smarts.strip() else None
    if query is None:
        raise ValueError(f"invalid SMARTS {smarts!r}: RDKit cannot parse it")
    return query


def substructures(user_smarts: Iterable[str] = ()) -> list[Substructure]:
    """``COMMON_SUBSTRUCTURES`` then the caller's SMARTS (named by themselves, each once), all
    checked first: an invalid one raises ValueError before anything is matched."""
    found = [Substructure(name, smarts) for name, smarts in COMMON_SUBSTRUCTURES]
    for smarts in dict.fromkeys(user_smarts):
        parse_smarts(smarts)
        found.append(Substructure(smarts, smarts, user=True))
    return found


def _match(smiles: Sequence[str], patterns: Sequence[Substructure]) -> list[list[int]]:
    RDLogger.DisableLog("rdApp.*")
    queries = [parse_smarts(p.smarts) for p in patterns]
    params = Chem.SmilesParserParams()
    params.allowCXSMILES = False  # a stored string is a plain SMILES, never extensions
    flags = []
    for smi in smiles:
        mol = Chem.MolFromSmiles(smi, params) if smi else None
        flags.append(
            [] if mol is None else [i for i, q in enumerate(queries) if mol.HasSubstructMatch(q)]
        )
    return flags


def _read_cache(path: Path, key: dict) -> dict[str, list[int]]:
    try:
        stored = read_json(path)
    except (ValueError, OSError):  # a damaged cache is only lost time: match again
        return {}
    ok = isinstance(stored, dict) and stored.get("key") == key
    return stored["flags"] if ok and isinstance(stored.get("flags"), dict) else {}


def substructure_flags(
    smiles: Sequence[str], patterns: Sequence[Substructure], cache: str | Path | None = None
) -> list[list[int]]:
    """Per molecule, the indices of ``patterns`` it contains (empty for an unparsable SMILES).

    Matching is RDKit's ``HasSubstructMatch`` on the molecule parsed from its SMILES (aromaticity
    perceived by RDKit; hydrogens implicit: H counts such as ``[OH]`` match, explicit hydrogen
    atoms such as ``[#1]`` do not). With ``cache`` (a JSON file, valid for the same patterns and
    RDKit), molecules matched before are not matched again, and the file is rewritten with
    exactly these molecules when any was new.
    """
    key = {"patterns": [p.smarts for p in patterns], "rdkit": rdBase.rdkitVersion}
    known = _read_cache(Path(cache), key) if cache is not None else {}
    wanted = list(dict.fromkeys(smiles))
    new = [s for s in wanted if s not in known]
    found = {**known, **dict(zip(new, _match(new, patterns), strict=True))}
    if cache is not None and (new or len(known) != len(wanted)):
        flags = {s: found[s] for s in wanted}
        write_text(cache, json.dumps({"key": key, "flags": flags}, separators=(",", ":")) + "\n")
    return [found[s] for s in smiles]
