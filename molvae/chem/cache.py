"""The oracle cache: objective outcomes kept in one SQLite file, so that an expensive objective
(docking, a simulation, an assay model) is never computed twice for the same molecule, across
``molvae score`` calls, campaigns and resumes.

A row, keyed by (objective spec, objective version, canonical SMILES), holds the raw outcome
(``ok`` with its value or ``failed`` with the reason), the call's seconds, when and by which
molvae it was stored. Constraints are re-applied on every read (`molvae.chem.scoring`), so they
are not stored; nor are invalid SMILES (they cost nothing). Several processes may share a file:
WAL journal, a busy timeout, a connection per process and thread, short ``BEGIN IMMEDIATE``
writes, ``ON CONFLICT DO NOTHING`` (the first row of a molecule stays). Local disks only (WAL
needs shared memory; not NFS).
"""

from __future__ import annotations

import math
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from molvae.chem.cache_file import OracleCacheError, connect, transaction
from molvae.io import write_csv
from molvae.resources import cache_dir
from molvae.version import __version__

if TYPE_CHECKING:
    import pandas as pd

ENV_VAR = "MOLVAE_ORACLE_CACHE"
CHUNK = 500  # keys per SELECT and rows per write transaction: well under SQLite's 999 variables

_COLUMNS = ("objective", "version", "smiles", "score", "status", "reason", "seconds", "created",
            "molvae_version")  # fmt: skip


class CachedScore(NamedTuple):
    """A stored outcome: ``score`` (NaN where ``status`` is "failed"), ``status`` ("ok" |
    "failed"), ``reason`` ("" or why it failed), ``seconds`` (wall time of the original call)."""

    score: float
    status: str
    reason: str
    seconds: float


class CacheRow(NamedTuple):
    """One outcome to store: the key (objective spec, its version, canonical SMILES) and the
    objective's raw result; ``seconds`` is the wall time the call took."""

    objective: str
    version: str
    smiles: str
    score: float
    status: str
    reason: str = ""
    seconds: float = 0.0


def default_cache_path() -> Path:
    """``$MOLVAE_ORACLE_CACHE``, else ``oracle.sqlite`` in `molvae.resources.cache_dir`
    (``$MOLVAE_CACHE`` or ``~/.cache/molvae``)."""
    env = os.environ.get(ENV_VAR, "").strip()
    return Path(env).expanduser() if env else cache_dir() / "oracle.sqlite"


class OracleCache:
    """A persistent store of objective outcomes in the SQLite file ``path`` (default:
    `default_cache_path`), created on first use unless ``create`` is False.

    Usable as a context manager; safe to share between threads (each gets its own connection)
    and between processes (each opens its own). Raises `OracleCacheError` for a file it must
    not use.
    """

    def __init__(self, path: str | os.PathLike | None = None, create: bool = True):
        self.path = Path(path).expanduser() if path is not None else default_cache_path()
        if not self.path.exists():
            if not create:
                raise OracleCacheError(f"no oracle cache at {self.path}")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connections: dict[tuple[int, int], sqlite3.Connection] = {}
        self._connection()  # a file we must not use fails here, not at the first lookup

    def __repr__(self) -> str:
        return f"OracleCache({str(self.path)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # a pickled cache reopens the file: a connection never crosses a process
        return (OracleCache, (self.path,))

    def __enter__(self) -> OracleCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close this process's connections (a forked child leaves its parent's alone)."""
        for key in [k for k in self._connections if k[0] == os.getpid()]:
            self._connections.pop(key).close()

    def get_many(
        self, objective: str, version: str, canonical_smiles: Iterable[str]
    ) -> dict[str, CachedScore]:
        """The stored outcomes among ``canonical_smiles`` for ``objective`` at ``version``,
        keyed by SMILES; a molecule never stored is absent."""
        keys = list(dict.fromkeys(canonical_smiles))
        out: dict[str, CachedScore] = {}
        with self._errors():
            conn = self._connection()
            for i in range(0, len(keys), CHUNK):
                chunk = keys[i : i + CHUNK]
                rows = conn.execute(
                    "SELECT smiles, score, status, reason, seconds FROM scores WHERE objective = ?"
                    f" AND version = ? AND smiles IN ({','.join('?' * len(chunk))})",
                    (objective, version, *chunk),
                )
                for smiles, score, status, reason, seconds in rows:
                    value = math.nan if score is None else float(score)
                    out[smiles] = CachedScore(value, status, reason, float(seconds))
        return out

    def put_many(self, rows: Iterable[CacheRow | tuple]) -> int:
        """Store ``rows`` (`CacheRow` or tuples in its order); a key already stored keeps its
        first row. Returns how many rows were new. Raises ``ValueError`` for a status other than
        "ok"/"failed" or an "ok" without a finite score."""
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        values = [_values(CacheRow(*r), created) for r in rows]
        added = 0
        with self._errors():
            conn = self._connection()
            for i in range(0, len(values), CHUNK):
                before = conn.total_changes
                with transaction(conn):
                    conn.executemany(
                        f"INSERT INTO scores ({','.join(_COLUMNS)}) VALUES "
                        f"({','.join('?' * len(_COLUMNS))}) "
                        "ON CONFLICT (objective, version, smiles) DO NOTHING",
                        values[i : i + CHUNK],
                    )
                added += conn.total_changes - before
        return added

    def stats(self) -> pd.DataFrame:
        """One row per (objective, version): ``rows``, ``ok``, ``failed``, ``seconds`` (the
        stored wall time: what recomputing them once would cost, so what each round of hits on
        them saves), ``first`` and ``last`` (UTC ISO times stored)."""
        import pandas as pd

        query = (
            "SELECT objective, version, COUNT(*) AS rows, SUM(status = 'ok') AS ok, "
            "SUM(status = 'failed') AS failed, SUM(seconds) AS seconds, MIN(created) AS first, "
            "MAX(created) AS last FROM scores GROUP BY objective, version "
            "ORDER BY objective, version"
        )
        with self._errors():
            cur = self._connection().execute(query)
            return pd.DataFrame(cur.fetchall(), columns=[d[0] for d in cur.description])

    def export(
        self, out: str | os.PathLike | None = None, objective: str | None = None
    ) -> pd.DataFrame:
        """Every stored row (only ``objective``'s if given) as a DataFrame with the table's
        columns; also written to the CSV file ``out`` (atomically) if given."""
        import pandas as pd

        where, params = ("WHERE objective = ?", (objective,)) if objective else ("", ())
        query = (
            f"SELECT {','.join(_COLUMNS)} FROM scores {where} ORDER BY objective, version, smiles"
        )
        with self._errors():
            df = pd.DataFrame(
                self._connection().execute(query, params).fetchall(), columns=_COLUMNS
            )
        if out is not None:
            write_csv(out, df)
        return df

    def backup(self, out: str | os.PathLike) -> Path:
        """Copy the whole cache into one SQLite file ``out`` (replaced atomically), consistent
        while campaigns write to it: SQLite's online backup, so the rows still in the
        write-ahead log are copied too, which copying the file alone would miss. Returns the
        path; ``out`` must not be the cache itself."""
        dest = Path(out)
        if dest.resolve() == self.path.resolve():
            raise OracleCacheError(f"cannot back the oracle cache {self.path} up onto itself")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        try:
            with self._errors(), closing(sqlite3.connect(tmp)) as target:
                self._connection().backup(target)
                # one self-contained file: no -wal beside it until someone writes to it
                target.execute("PRAGMA journal_mode=DELETE")
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    def _connection(self) -> sqlite3.Connection:
        key = (os.getpid(), threading.get_ident())
        conn = self._connections.get(key)
        if conn is None:
            with self._errors():
                conn = connect(self.path)
            self._connections[key] = conn
        return conn

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:  # locked past the timeout, read-only, disk I/O
            raise OracleCacheError(f"oracle cache {self.path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:  # not SQLite, or pages damaged
            raise OracleCacheError(
                f"{self.path} is damaged or not an oracle cache ({exc}); move it aside or "
                "choose another file"
            ) from exc


def _values(row: CacheRow, created: str) -> tuple:
    if row.status not in ("ok", "failed"):
        raise ValueError(f"a cached status is 'ok' or 'failed', not {row.status!r}")
    score = float(row.score)
    if row.status == "ok" and not math.isfinite(score):
        raise ValueError(f"an 'ok' row needs a finite score, got {row.score!r} for {row.smiles}")
    stored = score if math.isfinite(score) else None  # NULL for NaN
    return (*row[:3], stored, row.status, row.reason, float(row.seconds), created, __version__)
