"""SMILES data: reading files, filtering with a drop report, bundled and full ZINC, splits.

A bad line is skipped and counted, never a crash; a bad *file* (missing, empty, binary, no SMILES
column) raises `DataError` with one sentence that names the file.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from molvae.tokens import Vocab, tokenize

SMILES_COLUMNS = (
    "smiles",
    "SMILES",
    "Smiles",
    "canonical_smiles",
    "CANONICAL_SMILES",
    "smi",
    "mol",
)

# MOSES ZINC Clean Leads ships inside this wheel; see DESIGN.md ("ZINC data").
MOSES_WHEEL = "molsets==0.3.1"
MOSES_WHEEL_FILE = "molsets-0.3.1-py3-none-any.whl"
MOSES_WHEEL_SHA256 = "7f4450e3ebecebe79c3a2a55950c93daddee071120daf64a163d03481e811d34"
MOSES_SPLITS = {"train": 1_584_663, "test": 176_074, "test_scaffolds": 176_225}

# Names usable wherever a data path is expected.
BUNDLED = {"zinc": "zinc/train.csv.gz", "zinc-test": "zinc/test.csv.gz"}
FETCHED = {
    "zinc-full": "train",
    "moses-train": "train",
    "moses-test": "test",
    "moses-test-scaffolds": "test_scaffolds",
}


class DataError(ValueError):
    """A data file that cannot be used at all (the message is one sentence naming the file)."""


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


# ---------------------------------------------------------------------------------------------
# Locating data


def data_dir() -> Path:
    """The bundled data: ``data/`` of a source checkout, else the installed ``molvae/_data``."""
    checkout = Path(__file__).resolve().parent.parent / "data"
    if checkout.is_dir():
        return checkout
    return Path(str(resources.files("molvae") / "_data"))


def cache_dir() -> Path:
    """Where fetched data is cached (``$MOLVAE_CACHE`` or ``~/.cache/molvae``)."""
    return Path(os.environ.get("MOLVAE_CACHE", Path.home() / ".cache" / "molvae"))


def resolve_data(spec: str | os.PathLike) -> Path:
    """A path, a bundled name (``zinc``, ``zinc-test``) or a MOSES name (fetched once, cached)."""
    spec = str(spec)
    if spec in BUNDLED:
        return data_dir() / BUNDLED[spec]
    if spec in FETCHED:
        return fetch_moses()[FETCHED[spec]]
    path = Path(spec).expanduser()
    if not path.exists():
        names = ", ".join([*BUNDLED, *FETCHED])
        raise DataError(f"{spec}: no such file (known data names: {names})")
    return path


def fetch_moses_wheel(directory: Path) -> Path:
    """The sha256-verified ``molsets==0.3.1`` wheel in ``directory`` (pip-downloaded if absent)."""
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / MOSES_WHEEL_FILE
    if not wheel.exists():
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(directory)]
        run = subprocess.run([*cmd, MOSES_WHEEL], capture_output=True, text=True)
        if run.returncode != 0 or not wheel.exists():
            last = (run.stderr or run.stdout).strip().splitlines()[-1:] or ["no output"]
            raise DataError(f"could not download {MOSES_WHEEL} with pip: {last[0]}")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != MOSES_WHEEL_SHA256:
        raise DataError(f"{wheel} has sha256 {digest}, expected {MOSES_WHEEL_SHA256}")
    return wheel


def fetch_moses(target: Path | None = None, quiet: bool = True) -> dict[str, Path]:
    """Fetch the MOSES ZINC splits (train/test/test_scaffolds csv.gz) into the cache, once.

    The `molsets==0.3.1` wheel is downloaded with ``pip download --no-deps`` (installing it fails on
    current Python), checked against its sha256, and only its data files are extracted.
    """
    target = Path(target) if target else cache_dir() / "moses"
    paths = {split: target / f"{split}.csv.gz" for split in MOSES_SPLITS}
    if all(p.exists() for p in paths.values()):
        return paths
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = fetch_moses_wheel(Path(tmp))
        with zipfile.ZipFile(wheel) as zf:
            for split, dest in paths.items():
                part = dest.with_suffix(".part")
                with zf.open(f"moses/dataset/data/{split}.csv.gz") as src, open(part, "wb") as out:
                    shutil.copyfileobj(src, out)
                os.replace(part, dest)
    if not quiet:
        print(f"MOSES ZINC splits cached in {target}", file=sys.stderr)
    return paths


# ---------------------------------------------------------------------------------------------
# Reading


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:  # zlib: corrupt gzip
        raise DataError(f"{path}: cannot read the file ({exc})") from None
    if b"\x00" in raw[:65536]:
        raise DataError(f"{path}: looks like a binary file, not SMILES text")
    # Undecodable bytes become U+FFFD; such a line then fails to parse and is counted as invalid.
    return raw.decode("utf-8", errors="replace")


def read_table(path: str | os.PathLike, column: str | None = None) -> tuple[pd.DataFrame, str]:
    """Read a SMILES file into a DataFrame (all columns kept, as text) and name its SMILES column.

    ``.csv``/``.tsv`` (optionally ``.gz``) need a header with a SMILES column (``smiles``,
    ``SMILES``, ... or ``column``); any other file is one SMILES per line, optionally followed by
    whitespace and a name, as in ``.smi`` files.
    """
    path = resolve_data(path)
    text = _read_text(path)
    if not text.strip():
        raise DataError(f"{path}: the file is empty")
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    if suffixes and suffixes[-1] in (".csv", ".tsv"):
        sep = "\t" if suffixes[-1] == ".tsv" else ","
        try:
            df = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, csv.Error) as exc:
            raise DataError(f"{path}: not a readable CSV file ({exc})".splitlines()[0]) from None
        names = [column] if column else list(SMILES_COLUMNS)
        found = next((c for c in names if c in df.columns), None)
        if found is None:
            want = column or "smiles"
            raise DataError(f"{path}: no '{want}' column (columns: {', '.join(df.columns)})")
        return df, found
    col = column or "smiles"
    rows = [line.split(maxsplit=1) for line in text.splitlines()]
    df = pd.DataFrame(
        {col: [r[0] if r else "" for r in rows], "name": [r[1] if len(r) > 1 else "" for r in rows]}
    )
    # A .smi with a header line ("smiles name") keeps the header out of the data.
    if len(df) and df[col].iloc[0].lower() in {c.lower() for c in SMILES_COLUMNS}:
        df = df.iloc[1:].reset_index(drop=True)
    return df, col


def read_smiles(path: str | os.PathLike, column: str | None = None) -> list[str]:
    """Every SMILES string of a file, as written (blank lines included as empty strings)."""
    df, col = read_table(path, column)
    return [str(s).strip() for s in df[col]]


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
    from molvae import chem

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


# ---------------------------------------------------------------------------------------------
# Token cache: a filtered, tokenized file kept on disk as memory-mapped arrays

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
    lengths = np.fromiter((len(tokenize(s)) + 2 for s in smiles), dtype=np.int64, count=len(smiles))
    offsets = np.zeros(len(smiles) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.empty(int(offsets[-1]), dtype=np.uint8)
    for s, start, end in zip(smiles, offsets[:-1], offsets[1:], strict=True):
        flat[start:end] = vocab.encode(s)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".build-"))
    np.save(tmp / "ids.npy", flat)
    np.save(tmp / "offsets.npy", offsets)
    meta = {"format": TOKEN_CACHE_FORMAT, "source": str(path), "vocab": vocab.tokens,
            "report": report.to_dict(), "n": len(smiles)}  # fmt: skip
    (tmp / "meta.json").write_text(json.dumps(meta))
    try:
        os.replace(tmp, target)
    except OSError:  # another process finished the same cache first: use theirs
        shutil.rmtree(tmp, ignore_errors=True)
    return TokenCache(target)
