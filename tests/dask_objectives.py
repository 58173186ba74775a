"""Objectives for the Dask tests, importable by the cluster's worker processes (they inherit
this test run's sys.path)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def slow_heavy_atoms(mol) -> float:
    """Heavy atoms after a pause, as a slow oracle; each call leaves a line in
    ``$MOLVAE_TEST_CALLS`` (when set) so a test can count the calls across processes."""
    time.sleep(0.3)
    log = os.environ.get("MOLVAE_TEST_CALLS")
    if log:
        with Path(log).open("a") as fh:
            fh.write(f"{os.getpid()}\n")
    return float(mol.GetNumHeavyAtoms())


def logged_qed(mol) -> float:
    """QED after 1 to 4.5 times ``$MOLVAE_TEST_SLEEP`` seconds (default 0.2; the factor a
    function of the molecule, so the calls of one batch come back one by one), as a slow
    oracle; each call appends its canonical SMILES to ``$MOLVAE_TEST_CALLS`` (when set), so a
    test can see which molecules reached the objective, across processes, and how often."""
    import hashlib

    from rdkit import Chem
    from rdkit.Chem import QED

    factor = 1 + hashlib.sha1(Chem.MolToSmiles(mol).encode()).digest()[0] % 8 / 2
    time.sleep(factor * float(os.environ.get("MOLVAE_TEST_SLEEP", "0.2")))
    log = os.environ.get("MOLVAE_TEST_CALLS")
    if log:
        with Path(log).open("a") as fh:
            fh.write(Chem.MolToSmiles(mol) + "\n")
    return float(QED.qed(mol))
