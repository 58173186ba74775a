"""Reconstruction accuracy of sets of molecules: greedy, and by the majority of several decodes.

The protocol of Kusner et al. 2017 / Jin et al. 2018: encode each molecule, decode, compare
canonical SMILES. A molecule the model cannot encode (tokens outside its vocabulary, too long)
is a miss, and counted apart (``n_encoded``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from molvae.evaluation import metrics


@dataclass
class Reconstructor:
    """``greedy(smiles)``: one decode per input, None where it cannot be encoded; ``attempts``
    (optional): ``k`` decodes per input for majority reconstruction."""

    decoding: str
    greedy: Callable[[list[str]], list[str | None]]
    attempts: Callable[[list[str], int], list[list[str]]] | None = None


@dataclass
class ReconstructionRow:
    """Greedy (and majority) reconstruction of one set with one decoding."""

    dataset: str
    decoding: str
    n: int
    n_encoded: int
    greedy: float
    majority: float
    seconds: float


def pick(items: list[str], size: int, seed: int) -> list[str]:
    """A seeded random subset of ``size`` items (all of them, in order, if there are fewer)."""
    if len(items) <= size:
        return list(items)
    idx = np.random.default_rng(seed).choice(len(items), size=size, replace=False)
    return [items[i] for i in sorted(idx)]


def reconstruction_row(
    name: str,
    smiles: list[str],
    recon: Reconstructor,
    n: int,
    n_attempts: int = 1,
    seed: int = 1,
) -> ReconstructionRow:
    """Reconstruct a seeded subset of ``n`` of ``smiles`` (all when fewer) with ``recon``."""
    t = time.perf_counter()
    inputs = pick(smiles, n, seed)
    greedy = majority = math.nan
    n_encoded = 0
    if inputs:
        outputs = recon.greedy(inputs)
        n_encoded = sum(o is not None for o in outputs)
        greedy = metrics.reconstruction_accuracy(inputs, [o or "" for o in outputs])
        if recon.attempts is not None and n_attempts > 1:
            attempts = recon.attempts(inputs, n_attempts)
            majority = metrics.majority_reconstruction_accuracy(inputs, attempts)
    return ReconstructionRow(
        name, recon.decoding, len(inputs), n_encoded, greedy, majority, time.perf_counter() - t
    )
