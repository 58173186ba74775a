"""Filtering SMILES with a drop report, seeded splits, and encoding to token ids.

Each input row is kept or dropped for one named reason; the `DropReport` counts them.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from molvae import chem
from molvae.data.readers import read_smiles
from molvae.data.tokens import Vocab, tokenize


@dataclass
class DropReport:
    """How many input rows were kept, and how many were dropped for which reason."""

    total: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)

    def add(self, reason: str, n: int = 1) -> None:
        self.dropped[reason] += n

    @property
    def n_dropped(self) -> int:
        return sum(self.dropped.values())

    def summary(self) -> str:
        if not self.dropped:
            return f"kept {self.kept}/{self.total} molecules"
        parts = ", ".join(f"{n} {reason}" for reason, n in self.dropped.most_common())
        return f"kept {self.kept}/{self.total} molecules; dropped {self.n_dropped} ({parts})"

    def to_dict(self) -> dict:
        return {"total": self.total, "kept": self.kept, "dropped": dict(self.dropped)}


@dataclass
class FilterConfig:
    """What `filter_smiles` keeps."""

    canonicalize: bool = True
    largest_fragment: bool = True  # salts and solvents: keep the largest fragment
    max_tokens: int | None = None  # tokens, bos/eos excluded
    dedupe: bool = False


def filter_smiles(
    smiles: Sequence[str], vocab: Vocab | None = None, config: FilterConfig | None = None
) -> tuple[list[str], DropReport]:
    """Keep usable SMILES (canonical if asked) and count the rest by reason.

    Reasons: ``empty``, ``invalid`` (RDKit cannot parse), ``too_long``, ``unknown_tokens`` (not in
    ``vocab``), ``duplicate``.
    """
    config = config or FilterConfig()
    report = DropReport(total=len(smiles))
    kept: list[str] = []
    seen: set[str] = set()
    for s in smiles:
        s = (s or "").strip()
        if not s:
            report.add("empty")
            continue
        if config.largest_fragment and "." in s:
            s = chem.largest_fragment(s) or ""
        out = chem.canonical(s) if config.canonicalize else (s if chem.parse(s) else None)
        if not out:
            report.add("invalid")
            continue
        if config.max_tokens is not None and len(tokenize(out)) > config.max_tokens:
            report.add("too_long")
            continue
        if vocab is not None and vocab.unknown_tokens(out):
            report.add("unknown_tokens")
            continue
        if config.dedupe:
            if out in seen:
                report.add("duplicate")
                continue
            seen.add(out)
        kept.append(out)
    report.kept = len(kept)
    return kept, report


def load_smiles(
    spec: str | os.PathLike,
    vocab: Vocab | None = None,
    config: FilterConfig | None = None,
    limit: int | None = None,
    column: str | None = None,
) -> tuple[list[str], DropReport]:
    """Read and filter a SMILES file (path or data name); ``limit`` keeps the first rows only."""
    raw = read_smiles(spec, column)
    if limit is not None:
        raw = raw[:limit]
    return filter_smiles(raw, vocab, config)


def split(items: Sequence, val_fraction: float = 0.05, seed: int = 0) -> tuple[list, list]:
    """A seeded random train/validation split."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError("val_fraction must be in [0, 1)")
    order = np.random.default_rng(seed).permutation(len(items))
    n_val = round(len(items) * val_fraction)
    return [items[i] for i in order[n_val:]], [items[i] for i in order[:n_val]]


def encode_all(smiles: Sequence[str], vocab: Vocab) -> list[np.ndarray]:
    """Token ids (bos..eos) of each SMILES, as compact integer arrays."""
    dtype = np.uint8 if len(vocab) <= 256 else np.int32
    return [np.asarray(vocab.encode(s), dtype=dtype) for s in smiles]
