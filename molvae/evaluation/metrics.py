"""Generation and reconstruction metrics with the MOSES definitions.

Definitions follow the MOSES benchmark (Polykovskiy et al. 2020, ``moses/metrics/metrics.py`` and
``utils.py`` of molecularsets/moses) so our numbers sit next to the published table:
validity, unique@k, novelty, internal diversity (IntDiv_p), SNN and FCD. Reconstruction accuracy
follows Kusner et al. 2017 / Jin et al. 2018 (canonical SMILES match). Empty inputs give NaN.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from molvae import chem
from molvae.evaluation import moses, similarity

if TYPE_CHECKING:
    import pandas as pd

MOSES_FP_SIZE = similarity.MOSES_FP_SIZE  # Morgan radius 2, 1024 bits, for IntDiv and SNN


def _canonical_valid(smiles: Iterable[str]) -> list[str]:
    """Canonical SMILES of the valid entries, in input order (duplicates kept)."""
    out = []
    for s in smiles:
        c = chem.canonical(s)
        if c is not None:
            out.append(c)
    return out


def validity(smiles: Sequence[str]) -> float:
    """Fraction of strings that parse into a molecule (MOSES ``fraction_valid``).

    Empty strings count as invalid; an empty list gives NaN.
    """
    if len(smiles) == 0:
        return math.nan
    return sum(chem.is_valid(s) for s in smiles) / len(smiles)


def uniqueness(smiles: Sequence[str], k: int | None = None) -> float:
    """MOSES unique@k: fraction of distinct canonical SMILES among the first ``k`` valid ones.

    Invalid strings are dropped first (MOSES ``get_all_metrics`` removes them before
    ``fraction_unique``). With fewer than ``k`` valid molecules, warns and uses all of them, as
    MOSES does. ``k=None`` uses every valid molecule. No valid molecule gives NaN.
    """
    valid = _canonical_valid(smiles)
    if k is not None:
        if len(valid) < k:
            warnings.warn(
                f"can't compute unique@{k}: only {len(valid)} valid molecules; using all of them",
                RuntimeWarning,
                stacklevel=2,
            )
        valid = valid[:k]
    if not valid:
        return math.nan
    return len(set(valid)) / len(valid)


def novelty(
    generated: Sequence[str], train: Iterable[str], canonicalize_train: bool = True
) -> float:
    """MOSES novelty: fraction of distinct valid generated molecules absent from ``train``.

    Both sides are compared as canonical SMILES; pass ``canonicalize_train=False`` when ``train``
    already holds canonical SMILES from this RDKit (saves re-parsing a large training set).
    """
    gen_set = set(_canonical_valid(generated))
    if not gen_set:
        return math.nan
    train_set = set(_canonical_valid(train)) if canonicalize_train else set(train)
    return len(gen_set - train_set) / len(gen_set)


def reconstruction_accuracy(inputs: Sequence[str], outputs: Sequence[str]) -> float:
    """Fraction of inputs whose decoded output is the same molecule (canonical SMILES match).

    An invalid output is a miss; so is an invalid input.
    """
    if len(inputs) != len(outputs):
        raise ValueError(f"{len(inputs)} inputs but {len(outputs)} outputs")
    if len(inputs) == 0:
        return math.nan
    hits = 0
    for x, y in zip(inputs, outputs, strict=True):
        cx = chem.canonical(x)
        hits += cx is not None and cx == chem.canonical(y)
    return hits / len(inputs)


def majority_reconstruction_accuracy(
    inputs: Sequence[str], attempts: Sequence[Sequence[str]]
) -> float:
    """Fraction of inputs whose most frequent valid decode among ``attempts[i]`` is the input.

    The Kusner et al. 2017 protocol decodes several times per molecule and keeps the most
    frequent valid result; ties go to the decode seen first. No valid decode is a miss.
    """
    if len(inputs) != len(attempts):
        raise ValueError(f"{len(inputs)} inputs but {len(attempts)} attempt lists")
    if len(inputs) == 0:
        return math.nan
    hits = 0
    for x, decodes in zip(inputs, attempts, strict=True):
        counts = Counter(_canonical_valid(decodes))
        cx = chem.canonical(x)
        hits += bool(counts) and cx is not None and counts.most_common(1)[0][0] == cx
    return hits / len(inputs)


def _packed(smiles: Iterable[str]) -> np.ndarray:
    return similarity.packed_fingerprints(m for m in map(chem.parse, smiles) if m is not None)


def _subsample(items: Sequence[str], size: int | None, seed: int) -> list[str]:
    if size is None or len(items) <= size:
        return list(items)
    idx = np.random.default_rng(seed).choice(len(items), size=size, replace=False)
    return [items[i] for i in sorted(idx)]


def internal_diversity(
    smiles: Sequence[str], p: int = 1, subsample: int | None = None, seed: int = 0
) -> float:
    """MOSES IntDiv_p: ``1 - mean_i (mean_j T(i, j)^p)^(1/p)`` over valid molecules.

    ``T`` is the Tanimoto similarity of Morgan radius-2, 1024-bit fingerprints; as in MOSES the
    mean runs over all pairs including ``i == j`` and duplicates are kept. ``subsample`` draws
    that many molecules (seeded) first; MOSES uses them all.
    """
    return similarity.internal_diversity(_packed(_subsample(list(smiles), subsample, seed)), p)


def snn(generated: Sequence[str], reference: Sequence[str]) -> float:
    """MOSES SNN: mean over valid generated molecules of the max Tanimoto to ``reference``.

    Morgan radius-2, 1024-bit fingerprints; exact, in blocks (`molvae.evaluation.similarity`).
    """
    return similarity.snn(_packed(generated), _packed(reference))


def fcd_score(generated: Sequence[str], reference: Sequence[str], device: str = "cpu") -> float:
    """Fréchet ChemNet Distance (Preuer et al. 2018) between two sets; lower is closer.

    ChemNet from the ``fcd`` package (its bundled weights, no download), run by
    `molvae.evaluation.chemnet`. Both sets are canonicalized and invalid strings dropped first,
    as MOSES does. Needs at least two valid molecules per set; raises ``ValueError`` otherwise.
    """
    from molvae.evaluation.chemnet import chemnet, fcd_statistics, frechet_distance

    gen, ref = _canonical_valid(generated), _canonical_valid(reference)
    if len(gen) < 2 or len(ref) < 2:
        raise ValueError(
            f"FCD needs at least 2 valid molecules per set, got {len(gen)} and {len(ref)}"
        )
    net = chemnet(device)
    return frechet_distance(
        *fcd_statistics(net.activations(gen)), *fcd_statistics(net.activations(ref))
    )


def property_stats(smiles: Sequence[str]) -> pd.DataFrame:
    """Mean and standard deviation (ddof=1) of logP, SAS, QED and MW over the valid molecules.

    Rows ``logP``, ``SAS``, ``QED``, ``MW``; columns ``mean``, ``std``, ``n`` (the layout of
    Table 1 of Gómez-Bombarelli et al. 2018, with molecular weight added).
    """
    import pandas as pd

    valid = _canonical_valid(smiles)
    rows = moses.describe_all(valid, filters=False, structure=False)
    values = {k: np.array([r[k] for r in rows], dtype=np.float64) for k in moses.PROPERTY_NAMES}
    stats = {}
    for name, v in values.items():
        stats[name] = {
            "mean": float(v.mean()) if len(v) else math.nan,
            "std": float(v.std(ddof=1)) if len(v) > 1 else math.nan,
            "n": len(v),
        }
    return pd.DataFrame.from_dict(stats, orient="index", columns=["mean", "std", "n"])
