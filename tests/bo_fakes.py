"""Fake decoder/encoder/objective for the BO tests: cheap, deterministic, RDKit-valid SMILES."""

from __future__ import annotations

import numpy as np
import torch
from rdkit import Chem, RDLogger

RDLogger.DisableLog("rdApp.*")

TAILS = ["", "O", "N", "F", "C(=O)O", "c1ccccc1"]
HEADS = ["", "F", "O", "Cl", "Br", "OC"]
DIM = 4


def canonical(smiles: str) -> str | None:
    """RDKit canonical SMILES or None (what molvae.chem.canonical will do)."""
    mol = Chem.MolFromSmiles(smiles) if smiles else None
    return None if mol is None else Chem.MolToSmiles(mol)


def smiles_of(z: np.ndarray) -> str:
    """z (d=4) -> SMILES: z0 sets the chain length, z2 the tail, z3 the head; z1 > 0.6 gives an
    invalid ring. About 430 distinct molecules: duplicates are common, the budget is reachable.
    """
    if z[1] > 0.6:
        return "C1CC"  # unclosed ring: invalid
    n = int(np.clip(np.floor(4 + 2.0 * z[0]), 1, 12))
    tail = TAILS[int(np.clip(np.floor(3 + 1.5 * z[2]), 0, len(TAILS) - 1))]
    head = HEADS[int(np.clip(np.floor(3 + 1.5 * z[3]), 0, len(HEADS) - 1))]
    return head + "C" * n + tail


def decode(z: torch.Tensor, n_attempts: int, seed: int) -> list[list[str]]:
    """Attempt 0 greedy, the others at z + noise (seeded), like a sampled decoder."""
    rng = np.random.default_rng(seed)
    zn = z.detach().double().numpy()
    out = []
    for row in zn:
        att = [smiles_of(row)]
        for _ in range(n_attempts - 1):
            att.append(smiles_of(row + 0.3 * rng.standard_normal(row.shape)))
        out.append(att)
    return out


def encode(smiles: list[str]) -> torch.Tensor:
    """Rough inverse of smiles_of; NaN rows for unparsable strings."""
    rows = []
    for s in smiles:
        mol = Chem.MolFromSmiles(s)
        if mol is None:
            rows.append([float("nan")] * DIM)
            continue
        n_c = sum(a.GetSymbol() == "C" for a in mol.GetAtoms())
        spread = sum(map(ord, s))
        rows.append([(min(n_c, 12) - 4) / 2.0 + 0.25, (spread % 7) / 4.0 - 1.0,
                     (len(s) % 5) / 3.0 - 0.8, (spread % 5) / 3.0 - 0.6])  # fmt: skip
    return torch.tensor(rows, dtype=torch.float32)


def prior(n: int, seed: int) -> torch.Tensor:
    """z ~ N(0, I) (n x 4), seeded."""
    return torch.randn(n, DIM, generator=torch.Generator().manual_seed(seed))


class Objective:
    """Carbons minus 0.5 per heteroatom; molecules with N fail; optionally crash after k calls."""

    def __init__(self, crash_after: int | None = None):
        self.calls = 0
        self.crash_after = crash_after

    def __call__(self, smiles: list[str]) -> tuple[np.ndarray, list[str]]:
        self.calls += 1
        if self.crash_after is not None and self.calls > self.crash_after:
            raise Crash(f"objective crashed at call {self.calls}")
        scores, status = [], []
        for s in smiles:
            mol = Chem.MolFromSmiles(s)
            if mol is None:
                scores.append(np.nan)
                status.append("invalid")
            elif "N" in s:
                scores.append(np.nan)
                status.append("failed")
            else:
                atoms = [a.GetSymbol() for a in mol.GetAtoms()]
                scores.append(atoms.count("C") - 0.5 * (len(atoms) - atoms.count("C")))
                status.append("ok")
        return np.array(scores, dtype=float), status


class Crash(Exception):
    """Simulated crash of the objective."""


DATA = [
    "C", "CC", "CCC", "CO", "CCO", "CN", "CCN", "CF", "CCF", "CC(=O)O", "OCCO", "CCCO",
    "c1ccccc1", "Cc1ccccc1", "CCOC", "COC", "CC(C)O", "NCCO", "CCCN", "FCCF",
]  # fmt: skip
