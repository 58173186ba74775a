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
from rdkit import DataStructs

from molvae import chem

if TYPE_CHECKING:
    import pandas as pd

# MOSES fingerprints for IntDiv and SNN: Morgan radius 2, 1024 bits.
MOSES_FP_SIZE = 1024


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


def _fingerprints(smiles: Iterable[str], fp_size: int = MOSES_FP_SIZE) -> list:
    fps = []
    for s in smiles:
        mol = chem.parse(s)
        if mol is not None:
            fps.append(chem.morgan_fingerprint(mol, fp_size))
    return fps


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
    mean runs over all pairs including ``i == j`` and duplicates are kept. The cost is quadratic:
    ``subsample`` draws that many molecules (seeded) first.
    """
    fps = _fingerprints(_subsample(list(smiles), subsample, seed))
    if not fps:
        return math.nan
    agg = np.empty(len(fps))
    for i, fp in enumerate(fps):
        sims = np.asarray(DataStructs.BulkTanimotoSimilarity(fp, fps))
        agg[i] = np.mean(sims**p) ** (1.0 / p)
    return float(1.0 - agg.mean())


def snn(generated: Sequence[str], reference: Sequence[str]) -> float:
    """MOSES SNN: mean over valid generated molecules of the max Tanimoto to ``reference``.

    Morgan radius-2, 1024-bit fingerprints. Quadratic cost: keep ``reference`` to a few thousand.
    """
    gen_fps, ref_fps = _fingerprints(generated), _fingerprints(reference)
    if not gen_fps or not ref_fps:
        return math.nan
    return float(np.mean([max(DataStructs.BulkTanimotoSimilarity(fp, ref_fps)) for fp in gen_fps]))


def fcd_score(
    generated: Sequence[str],
    reference: Sequence[str],
    device: str = "cpu",
    batch_size: int = 128,
) -> float:
    """Fréchet ChemNet Distance (Preuer et al. 2018) between two sets; lower is closer.

    Uses the ``fcd`` package and its bundled ChemNet weights (no download). Both sets are
    canonicalized and invalid strings dropped first, as MOSES does. Needs at least two valid
    molecules per set; raises ``ValueError`` otherwise.
    """
    import fcd

    gen, ref = _canonical_valid(generated), _canonical_valid(reference)
    if len(gen) < 2 or len(ref) < 2:
        raise ValueError(
            f"FCD needs at least 2 valid molecules per set, got {len(gen)} and {len(ref)}"
        )
    model = fcd.load_ref_model()  # cached by the fcd package
    # n_jobs=0 keeps the one-hot encoding in this process: no DataLoader worker to fork.
    with warnings.catch_warnings():
        # fcd 1.2.2 calls np.row_stack, deprecated in numpy 2: not ours to fix.
        warnings.simplefilter("ignore", DeprecationWarning)
        act_gen = fcd.get_predictions(model, gen, batch_size=batch_size, n_jobs=0, device=device)
        act_ref = fcd.get_predictions(model, ref, batch_size=batch_size, n_jobs=0, device=device)
    return _frechet_distance(act_gen, act_ref, device)


def _frechet_distance(act1: np.ndarray, act2: np.ndarray, device: str = "cpu") -> float:
    """``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1 S2)`` of two ``n x 512`` activation sets.

    ``tr sqrt(S1 S2)`` is the sum of the square roots of the eigenvalues of the symmetric
    ``sqrt(S1) S2 sqrt(S1)``: two ``eigh`` calls replace ``scipy.linalg.sqrtm`` (what the fcd
    package uses; seconds on the singular covariances of small sets), same value to ~1e-6. Done
    in torch float64 so it runs on ``device`` and honours ``torch.set_num_threads``.
    """
    import torch

    x1 = torch.as_tensor(act1, dtype=torch.float64, device=device)
    x2 = torch.as_tensor(act2, dtype=torch.float64, device=device)
    s1, s2 = torch.cov(x1.T), torch.cov(x2.T)
    w, v = torch.linalg.eigh(s1)
    root1 = (v * w.clamp_min(0).sqrt()) @ v.T
    tr_covmean = torch.linalg.eigvalsh(root1 @ s2 @ root1).clamp_min(0).sqrt().sum()
    diff = x1.mean(0) - x2.mean(0)
    return float(diff @ diff + s1.trace() + s2.trace() - 2 * tr_covmean)


def property_stats(smiles: Sequence[str]) -> pd.DataFrame:
    """Mean and standard deviation (ddof=1) of logP, SAS and QED over the valid molecules.

    Rows ``logP``, ``SAS``, ``QED``; columns ``mean``, ``std``, ``n`` (the layout of Table 1 of
    Gómez-Bombarelli et al. 2018).
    """
    return summarize_properties(chem.property_table(smiles, names=("logp", "sa_score", "qed")))


def summarize_properties(table: pd.DataFrame) -> pd.DataFrame:
    """``property_stats`` from a ``chem.property_table`` with ``logp``, ``sa_score``, ``qed``."""
    import pandas as pd

    table = table[table["valid"]]
    rows = {}
    for label, column in (("logP", "logp"), ("SAS", "sa_score"), ("QED", "qed")):
        values = table[column].dropna().to_numpy(dtype=float)
        rows[label] = {
            "mean": float(values.mean()) if len(values) else math.nan,
            "std": float(np.std(values, ddof=1)) if len(values) > 1 else math.nan,
            "n": len(values),
        }
    return pd.DataFrame.from_dict(rows, orient="index", columns=["mean", "std", "n"])
