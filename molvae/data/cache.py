"""Token cache: a filtered, tokenized SMILES file kept on disk as memory-mapped arrays."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from molvae.data.errors import DataError
from molvae.data.filtering import DropReport, FilterConfig, load_smiles
from molvae.data.readers import resolve_data
from molvae.data.tokens import Vocab, tokenize
from molvae.io import write_npy, write_text
from molvae.resources import cache_dir

TOKEN_CACHE_FORMAT = 1


class TokenCache(Sequence):
    """Token-id arrays (bos..eos) of a filtered SMILES file, memory-mapped from ``directory``.

    ``ids.npy`` holds every molecule's ids end to end (uint8), ``offsets.npy`` (int64, n + 1)
    where each starts; ``meta.json`` the vocabulary and the drop report. Indexing returns a small
    in-memory array; the data itself stays on disk (full ZINC: about 70 MB), so an epoch neither
    re-tokenizes nor holds Python lists of 1.6M arrays. ``subset`` selects rows without copying.
    """

    def __init__(self, directory: str | os.PathLike, index: np.ndarray | None = None):
        self.dir = Path(directory)
        meta = json.loads((self.dir / "meta.json").read_text())
        self.meta = meta
        self.vocab = Vocab(meta["vocab"])
        self.report = DropReport(
            meta["report"]["total"], meta["report"]["kept"], Counter(meta["report"]["dropped"])
        )
        self._flat = np.load(self.dir / "ids.npy", mmap_mode="r")
        self._offsets = np.load(self.dir / "offsets.npy")
        self._index = None if index is None else np.asarray(index, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._offsets) - 1 if self._index is None else len(self._index)

    def __getitem__(self, i):  # type: ignore[override]
        j = int(i if self._index is None else self._index[i])
        return np.array(self._flat[self._offsets[j] : self._offsets[j + 1]])

    def lengths(self) -> np.ndarray:
        """Token count of each molecule (bos/eos included), ``n``."""
        lens = np.diff(self._offsets)
        return lens if self._index is None else lens[self._index]

    def subset(self, indices: Sequence[int] | np.ndarray) -> TokenCache:
        """The rows ``indices`` (positions in this cache), sharing the mapped file."""
        idx = np.asarray(indices, dtype=np.int64)
        return TokenCache(self.dir, idx if self._index is None else self._index[idx])


def _cache_key(path: Path, config: FilterConfig, limit: int | None, column: str | None) -> str:
    stat = path.stat()
    ident = {
        "format": TOKEN_CACHE_FORMAT,
        "path": str(path.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "filter": vars(config),
        "limit": limit,
        "column": column,
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:20]


def token_cache(
    spec: str | os.PathLike,
    config: FilterConfig | None = None,
    limit: int | None = None,
    column: str | None = None,
    root: str | os.PathLike | None = None,
) -> TokenCache:
    """The :class:`TokenCache` of a SMILES file: built once (read, filter, tokenize), then reused.

    Keyed by the file (path, size, mtime), the filter settings, ``limit`` and ``column``; stored
    under ``root`` (default ``cache_dir()/tokens``). The vocabulary is built from the kept
    molecules. Built in a temp directory and renamed, so a killed build leaves no half cache.
    """
    config = config or FilterConfig()
    path = resolve_data(spec)
    root = Path(root) if root else cache_dir() / "tokens"
    target = root / _cache_key(path, config, limit, column)
    if (target / "meta.json").exists():
        return TokenCache(target)
    smiles, report = load_smiles(path, config=config, limit=limit, column=column)
    vocab = Vocab.build(smiles)
    if len(vocab) > 256:
        raise DataError(f"{path}: {len(vocab)} distinct tokens do not fit the uint8 token cache")
    flat, offsets = _pack(smiles, vocab)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".build-"))
    write_npy(tmp / "ids.npy", flat)
    write_npy(tmp / "offsets.npy", offsets)
    meta = {"format": TOKEN_CACHE_FORMAT, "source": str(path), "vocab": vocab.tokens,
            "report": report.to_dict(), "n": len(smiles)}  # fmt: skip
    write_text(tmp / "meta.json", json.dumps(meta))
    try:
        os.replace(tmp, target)
    except OSError:  # another process finished the same cache first: use theirs
        shutil.rmtree(tmp, ignore_errors=True)
    return TokenCache(target)


def _pack(smiles: Sequence[str], vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
    """Every molecule's ids end to end (uint8) and the offsets (int64, n + 1) where each starts."""
    lengths = np.fromiter((len(tokenize(s)) + 2 for s in smiles), dtype=np.int64, count=len(smiles))
    offsets = np.zeros(len(smiles) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.empty(int(offsets[-1]), dtype=np.uint8)
    for s, start, end in zip(smiles, offsets[:-1], offsets[1:], strict=True):
        flat[start:end] = vocab.encode(s)
    return flat, offsets
