"""The simulated expensive oracle of `async_bo.py`, importable by Dask worker processes: Tanimoto
similarity to celecoxib after a log-normal pause.

The pause is a function of the molecule (seeded by its canonical SMILES), so synchronous and
asynchronous runs that meet the same molecule wait the same time. Settings come from the
environment, which the benchmark sets before it starts the workers: ``ASYNC_BENCH_MEDIAN``
(seconds, default 20), ``ASYNC_BENCH_SIGMA`` (the log-normal's sigma, default 0.75) and
``ASYNC_BENCH_LOG`` (a file; each call appends ``start end smiles``).
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import time
from pathlib import Path

from rdkit import Chem

from molvae.chem.objectives import TanimotoTo

CELECOXIB = "Cc1ccc(-c2cc(C(F)(F)F)nn2-c2ccc(S(N)(=O)=O)cc2)cc1"
_TARGET = TanimotoTo(CELECOXIB)


def latency(smiles: str, median: float, sigma: float) -> float:
    """The pause for ``smiles`` (canonical): log-normal with ``median`` and ``sigma``."""
    seed = int.from_bytes(hashlib.sha256(smiles.encode()).digest()[:8], "little")
    return median * math.exp(sigma * random.Random(seed).gauss(0.0, 1.0))


def slow_similarity(mol) -> float:
    """Tanimoto similarity to celecoxib, after `latency` seconds."""
    smiles = Chem.MolToSmiles(mol)
    start = time.time()
    time.sleep(latency(smiles, float(os.environ.get("ASYNC_BENCH_MEDIAN", "20")),
                       float(os.environ.get("ASYNC_BENCH_SIGMA", "0.75"))))  # fmt: skip
    log = os.environ.get("ASYNC_BENCH_LOG")
    if log:
        with Path(log).open("a") as fh:
            fh.write(f"{start:.3f} {time.time():.3f} {smiles}\n")
    return float(_TARGET(mol))
