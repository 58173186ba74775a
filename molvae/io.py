"""The one atomic writer, and small formatting helpers every stage shares.

Every file molvae writes goes through :func:`atomic_write`: the bytes land in a temp file in the
target's folder, are fsynced, and replace the target with ``os.replace``. A kill or a full disk at
any moment leaves either the old file or the new one, never half of one, and no stray temp file.
Appending rows to a growing log (a campaign's ``evaluations.csv``) is the one exception; its
owner appends and fsyncs line by line.

Knows nothing of the rest of molvae.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# read once: os.umask can only be read by setting it, which is not thread-safe
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Open a temp file beside ``path`` for writing (``"w"`` text UTF-8, ``"wb"`` bytes); on a
    clean exit it is fsynced and renamed onto ``path``, on any error removed.

    Parent folders are created. The temp name carries the process id, so several processes
    (torchrun ranks) writing the same file never share a temp file.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', not {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as fh:
            # mkstemp makes the file 0600; give it the mode open() would have (0666 - umask)
            if hasattr(os, "fchmod"):  # not on Windows, where mkstemp's mode is not 0600
                os.fchmod(fh.fileno(), 0o666 & ~_UMASK)
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) atomically; returns the path."""
    with atomic_write(path) as fh:
        fh.write(text)
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` atomically; returns the path."""
    with atomic_write(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> Path:
    """Write ``obj`` as JSON atomically; objects JSON lacks (Paths, numpy scalars) as ``str``."""
    return write_text(path, json.dumps(obj, indent=indent, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """The JSON document at ``path``, or None when there is no such file."""
    path = Path(path)
    if not path.exists():
        return None
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 hex digest of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_csv(path: str | os.PathLike, df: pd.DataFrame) -> Path:
    """Write a DataFrame as CSV (no index) atomically."""
    with atomic_write(path) as fh:
        df.to_csv(fh, index=False)
    return Path(path)


def write_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write a numpy array as ``.npy`` atomically (``np.save`` would add ``.npy`` to a temp name,
    so the array goes through the open file)."""
    import numpy as np

    with atomic_write(path, "wb") as fh:
        np.save(fh, array, allow_pickle=False)
    return Path(path)


def write_with(path: str | os.PathLike, save: Callable[[IO[bytes]], None]) -> Path:
    """Atomically write whatever ``save(binary_file)`` writes: ``torch.save``, ``fig.savefig``."""
    with atomic_write(path, "wb") as fh:
        save(fh)
    return Path(path)


def markdown_table(df: pd.DataFrame) -> str:
    """A DataFrame as a Markdown table (floats to 4 significant digits)."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        cells = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _json_default(obj: Any) -> Any:
    return obj.item() if hasattr(obj, "item") else str(obj)
