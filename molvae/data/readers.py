"""Reading SMILES files (path or data name) and latent arrays.

A bad line is skipped and counted, never a crash; a bad *file* (missing, empty, binary, no SMILES
column) raises `DataError` with one sentence that names the file.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from molvae.data.errors import DataError
from molvae.data.zinc import FETCHED, fetch_moses
from molvae.resources import BUNDLED_DATA, data_dir

SMILES_COLUMNS = (
    "smiles",
    "SMILES",
    "Smiles",
    "canonical_smiles",
    "CANONICAL_SMILES",
    "smi",
    "mol",
)


def resolve_data(spec: str | os.PathLike) -> Path:
    """A path, a bundled name (``zinc``, ``zinc-test``) or a MOSES name (fetched once, cached)."""
    spec = str(spec)
    if spec in BUNDLED_DATA:
        return data_dir() / BUNDLED_DATA[spec]
    if spec in FETCHED:
        return fetch_moses()[FETCHED[spec]]
    path = Path(spec).expanduser()
    if not path.exists():
        names = ", ".join([*BUNDLED_DATA, *FETCHED])
        raise DataError(f"{spec}: no such file (known data names: {names})")
    return path


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


def read_latents(path: str | Path, latent_dim: int) -> np.ndarray:
    """Latents ``n x latent_dim`` (float32, NaN rows kept) from a ``.npy`` array or a CSV whose
    ``z0..z{d-1}`` columns hold them (other columns are ignored), as ``molvae encode`` writes.

    Anything else raises `DataError` or ValueError with a one-line message; a ``.npy`` is read
    with ``allow_pickle=False``, so a crafted file never runs code.
    """
    path = Path(path)
    if not path.is_file():  # a directory or a missing file: one line, not a traceback
        raise DataError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    if path.suffix == ".npy":
        try:
            z = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise DataError(f"{path}: not a readable .npy array ({exc})") from None
    else:
        try:
            df = pd.read_csv(path)
            cols = [c for c in df.columns if str(c).startswith("z") and str(c)[1:].isdigit()]
            z = df[sorted(cols, key=lambda c: int(c[1:]))].to_numpy(dtype=np.float32)
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(
                f"{path}: not a CSV of numeric z0..z{latent_dim - 1} columns ({first})"
            ) from None
    try:
        z = np.atleast_2d(np.asarray(z, dtype=np.float32))
    except (TypeError, ValueError) as exc:  # e.g. a .npy of strings
        raise DataError(f"{path}: latents are not numbers ({exc})") from None
    if z.ndim != 2 or z.shape[1] != latent_dim:
        raise ValueError(f"{path}: latents of shape {z.shape}, the model needs n x {latent_dim}")
    return z
