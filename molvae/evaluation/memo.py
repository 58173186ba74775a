"""Per-molecule results shared by the rows of one evaluation.

The rows of ``molvae evaluate`` share many molecules: a grammar row decodes the raw row's
latents with the same seed and keeps every raw draw the grammar accepts, so most of its
molecules are the raw row's. Every per-molecule quantity (RDKit descriptors, fingerprint,
best Tanimoto match in each reference set, ChemNet activations) is therefore computed once per
distinct canonical SMILES and looked up by later rows. Set metrics (IntDiv, FCD, Frag, Scaf)
are still formed per row from these.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from molvae import chem
from molvae.evaluation import moses, similarity


def _fill(store: dict, keys: Sequence[Any], compute: Callable[[list], Sequence[Any]]) -> list:
    """``store[k]`` for each key, computing (in one call) only the keys not stored yet."""
    new = [k for k in dict.fromkeys(keys) if k not in store]
    if new:
        values = compute(new)
        if len(values) != len(new):
            raise ValueError(f"computed {len(values)} values for {len(new)} molecules")
        store.update(zip(new, values, strict=True))
    return [store[k] for k in keys]


@dataclass
class MoleculeMemo:
    """Per-molecule results of one evaluation, keyed by canonical SMILES.

    ``filters``, ``n_jobs`` and ``device`` are fixed for its lifetime: a memo serves one
    `EvaluateConfig`. The reference sets are told apart by their label (Test, TestSF).
    """

    filters: bool = True
    n_jobs: int = 1
    device: str = "cpu"
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    fingerprints_: dict[str, np.ndarray] = field(default_factory=dict)
    best_match: dict[str, dict[str, float]] = field(default_factory=dict)
    activations_: dict[str, np.ndarray] = field(default_factory=dict)

    def described(self, smiles: Sequence[str]) -> list[dict[str, Any]]:
        """`moses.describe` of each canonical SMILES."""
        return _fill(
            self.rows, smiles,
            lambda new: moses.describe_all(new, filters=self.filters, n_jobs=self.n_jobs),
        )  # fmt: skip

    def fingerprints(self, smiles: Sequence[str]) -> np.ndarray:
        """``len(smiles) x 128`` packed Morgan bits (`similarity.packed_fingerprints`)."""
        rows = _fill(
            self.fingerprints_, smiles,
            lambda new: list(similarity.packed_fingerprints(chem.parse(s) for s in new)),
        )  # fmt: skip
        return np.stack(rows) if rows else np.zeros((0, similarity.MOSES_FP_SIZE // 8), np.uint8)

    def max_tanimoto(self, smiles: Sequence[str], label: str, ref: np.ndarray) -> np.ndarray:
        """Each molecule's highest Tanimoto similarity to the packed fingerprints ``ref``."""
        store = self.best_match.setdefault(label, {})

        def compute(new: list[str]) -> list[float]:
            return similarity.max_tanimoto(self.fingerprints(new), ref, self.device).tolist()

        return np.array(_fill(store, smiles, compute), dtype=np.float64)

    def activations(self, smiles: Sequence[str], net: Callable[[], Any]) -> np.ndarray:
        """``len(smiles) x 512`` ChemNet activations; ``net()`` gives the network when needed."""
        rows = _fill(self.activations_, smiles, lambda new: list(net().activations(new)))
        return np.stack(rows) if rows else np.zeros((0, 512), dtype=np.float32)
