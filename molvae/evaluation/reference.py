"""What the metrics compare samples with, computed once per reference set and cached on disk.

A MOSES test split is 176k molecules: its ChemNet statistics take minutes on a CPU, its
fingerprints, BRICS fragments and scaffolds about a minute, and canonicalizing the 1.58M-molecule
train split for novelty a few minutes more. ``reference_stats`` and ``train_stats`` store them
under ``cache_dir()/evaluation``, keyed by a hash of the molecules and the versions that make
the numbers (RDKit, fcd, this module's ``STATS_VERSION``), so every later evaluation reads them
in a second. Sets under ``CACHE_MIN`` molecules are computed each time (fast, and tests do not
write into the user's cache).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from molvae import chem
from molvae.evaluation import moses, similarity
from molvae.io import write_with
from molvae.resources import cache_dir

STATS_VERSION = 1
CACHE_MIN = 5000
Log = Callable[[str], None]


@dataclass
class ReferenceStats:
    """One reference set (MOSES Test or TestSF) reduced to what the metrics need."""

    label: str  # "Test" or "TestSF"
    description: str
    n: int  # valid molecules
    fingerprints: np.ndarray  # packed Morgan r2 1024 bits, n x 128
    fragments: Counter
    scaffolds: Counter
    fcd_mu: np.ndarray | None = None
    fcd_sigma: np.ndarray | None = None


@dataclass
class TrainStats:
    """The training set for novelty (hashes of canonical SMILES) and the property table."""

    description: str
    n: int  # valid molecules
    hashes: np.ndarray  # sorted uint64 hashes of the canonical SMILES
    properties: dict[str, np.ndarray]  # logP, SAS, QED, MW of a seeded subset


def smiles_hashes(smiles: Sequence[str]) -> np.ndarray:
    """64-bit hashes (blake2b) of SMILES strings: set membership without a set of strings."""
    return np.array(
        [int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little")
         for s in smiles],
        dtype=np.uint64,
    )  # fmt: skip


def _key(smiles: Sequence[str], *extra: Any) -> str:
    import fcd
    import rdkit

    digest = hashlib.sha256()
    for part in (STATS_VERSION, rdkit.__version__, getattr(fcd, "__version__", "?"), *extra):
        digest.update(f"{part}\n".encode())
    for s in smiles:
        digest.update(s.encode() + b"\n")
    return digest.hexdigest()[:24]


def _cached(name: str, use: bool, compute: Callable[[], dict[str, np.ndarray]]) -> dict:
    """``compute()``'s arrays, read from (or written to) ``cache_dir()/evaluation/name.npz``."""
    path = cache_dir() / "evaluation" / f"{name}.npz"
    if use and path.exists():
        try:
            with np.load(path, allow_pickle=False) as npz:
                return {k: npz[k] for k in npz.files}
        except (OSError, ValueError):  # a damaged cache file is computed again
            pass
    arrays = compute()
    if use:
        write_with(path, lambda fh: np.savez(fh, **arrays))
    return arrays


def _counter(keys: np.ndarray, values: np.ndarray) -> Counter:
    """The counts `_counter_arrays` stored: keys as one UTF-8 byte string, newline-separated
    (or, as first written, a unicode array)."""
    if keys.dtype.kind == "U":
        names = keys.tolist()
    else:
        names = keys.tobytes().decode().split("\n") if len(values) else []
    return Counter(dict(zip(names, values.tolist(), strict=True)))


def _counter_arrays(prefix: str, counts: Counter) -> dict[str, np.ndarray]:
    keys = sorted(counts)  # SMILES hold no newline; a unicode array would pad every key
    return {
        f"{prefix}_keys": np.frombuffer("\n".join(keys).encode(), dtype=np.uint8),
        f"{prefix}_counts": np.array([counts[k] for k in keys], dtype=np.int64),
    }


def reference_stats(
    label: str,
    smiles: Sequence[str],
    description: str,
    fcd: bool = True,
    device: str = "cpu",
    n_jobs: int = 1,
    cache: bool = True,
    log: Log | None = None,
) -> ReferenceStats:
    """Fingerprints, fragment and scaffold counts and (``fcd``) ChemNet mean and covariance of
    the valid molecules of ``smiles`` (canonicalized first, as the samples are)."""
    use = cache and len(smiles) >= CACHE_MIN
    key = _key(smiles, "reference")
    where = f" (once; cached in {cache_dir() / 'evaluation'})" if use else ""
    memo: list[list[str]] = []

    def canonical() -> list[str]:
        if not memo:
            memo.append([c for c in moses.canonical_all(smiles, n_jobs) if c is not None])
        return memo[0]

    def structure() -> dict[str, np.ndarray]:
        if log:
            log(f"{label}: fingerprints, fragments, scaffolds of {len(smiles):,} molecules{where}")
        canon = canonical()
        rows = moses.describe_all(canon, properties=False, filters=False, n_jobs=n_jobs)
        fps = similarity.packed_fingerprints(chem.parse(s) for s in canon)
        return {
            "fingerprints": fps,
            **_counter_arrays("fragments", moses.count(rows, "fragments")),
            **_counter_arrays("scaffolds", moses.count(rows, "scaffold")),
        }

    arrays = _cached(f"ref-{key}", use, structure)
    stats = ReferenceStats(
        label, description, len(arrays["fingerprints"]), arrays["fingerprints"],
        _counter(arrays["fragments_keys"], arrays["fragments_counts"]),
        _counter(arrays["scaffolds_keys"], arrays["scaffolds_counts"]),
    )  # fmt: skip
    if fcd:

        def chemnet() -> dict[str, np.ndarray]:
            from molvae.evaluation.chemnet import chemnet as net
            from molvae.evaluation.chemnet import fcd_statistics

            if log:
                log(f"{label}: ChemNet activations of {len(smiles):,} molecules{where}")
            mu, sigma = fcd_statistics(net(device).activations(canonical()))
            return {"mu": mu, "sigma": sigma}

        fcd_arrays = _cached(f"ref-{key}-fcd", use, chemnet)
        stats.fcd_mu, stats.fcd_sigma = fcd_arrays["mu"], fcd_arrays["sigma"]
    return stats


def train_stats(
    smiles: Sequence[str],
    description: str,
    n_properties: int = 30000,
    seed: int = 0,
    n_jobs: int = 1,
    cache: bool = True,
    log: Log | None = None,
) -> TrainStats:
    """Hashes of every canonical training SMILES, and logP, SAS, QED, MW of a seeded subset of
    ``n_properties`` of them (the data row of the sample-statistics table)."""
    use = cache and len(smiles) >= CACHE_MIN
    key = _key(smiles, "train", n_properties, seed)

    def compute() -> dict[str, np.ndarray]:
        if log:
            where = f" (once; cached in {cache_dir() / 'evaluation'})" if use else ""
            log(f"training set: canonical SMILES of {len(smiles):,} molecules{where}")
        canon = [c for c in moses.canonical_all(smiles, n_jobs) if c is not None]
        pick = np.random.default_rng(seed).permutation(len(canon))[:n_properties]
        rows = moses.describe_all(
            [canon[i] for i in np.sort(pick)], filters=False, structure=False, n_jobs=n_jobs
        )
        props = {name: np.array([r[name] for r in rows], dtype=np.float64)
                 for name in moses.PROPERTY_NAMES}  # fmt: skip
        return {"hashes": np.unique(smiles_hashes(canon)), "n": np.array(len(canon)), **props}

    arrays = _cached(f"train-{key}", use, compute)
    props = {name: arrays[name] for name in moses.PROPERTY_NAMES}
    return TrainStats(description, int(arrays["n"]), arrays["hashes"], props)


def novelty(canonical_valid: Sequence[str], train: TrainStats) -> float:
    """MOSES novelty: the fraction of distinct valid samples whose canonical SMILES is not in
    the training set. NaN without valid samples."""
    distinct = sorted(set(canonical_valid))
    if not distinct:
        return float("nan")
    found = np.isin(smiles_hashes(distinct), train.hashes, assume_unique=False)
    return float(1.0 - found.mean())
