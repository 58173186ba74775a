"""Regenerate ``data/zinc250k/neutral_2k.smi``: 2,000 neutral ZINC-250k molecules not in MOSES.

    python pipelines/make_neutral_zinc250k.py     # needs ../shared/data and `molvae fetch-zinc`

The source is JT-VAE's ZINC-250k validation split (``../shared/data/zinc250k_valid_24k.smi.gz``,
see ``../shared/data/README.md``). Kept: molecules RDKit parses whose atoms all have formal charge
0, written as canonical SMILES without stereo (the MOSES vocabulary has neither charges nor
stereo), distinct, and absent from all three MOSES splits (train, test, test_scaffolds, compared
as canonical SMILES without stereo): a set the model never saw that is not drawn from MOSES. Then
2,000 of them are drawn with ``numpy.random.default_rng(0)`` and written in file order.
"""

from __future__ import annotations

import argparse
import gzip
import sys
from pathlib import Path

import numpy as np
from rdkit import Chem, RDLogger

from molvae.data import fetch_moses, read_smiles
from molvae.io import write_text

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT.parent / "shared" / "data" / "zinc250k_valid_24k.smi.gz"
OUT = ROOT / "data" / "zinc250k" / "neutral_2k.smi"


def flat(smiles: str) -> str | None:
    """Canonical SMILES without stereo of a neutral molecule; None if charged or invalid."""
    mol = Chem.MolFromSmiles(smiles)
    if mol is None or any(a.GetFormalCharge() != 0 for a in mol.GetAtoms()):
        return None
    return Chem.MolToSmiles(mol, isomericSmiles=False)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", type=Path, default=SOURCE)
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("-n", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    RDLogger.DisableLog("rdApp.*")
    with gzip.open(a.source, "rt") as fh:
        lines = fh.read().split()
    candidates = list(dict.fromkeys(f for f in map(flat, lines) if f))
    moses = set()
    for split, path in fetch_moses().items():
        moses.update(filter(None, map(flat, read_smiles(path))))
        print(f"{split}: {len(moses):,} MOSES molecules so far", file=sys.stderr)
    kept = [s for s in candidates if s not in moses]
    pick = np.sort(np.random.default_rng(a.seed).choice(len(kept), size=a.n, replace=False))
    write_text(a.out, "".join(f"{kept[i]}\n" for i in pick))
    print(
        f"{len(lines):,} source molecules, {len(candidates):,} neutral and distinct, "
        f"{len(candidates) - len(kept):,} of them in MOSES; wrote {a.n:,} to {a.out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
