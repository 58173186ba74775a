"""The oracle cache's SQLite file (`molvae.chem.cache`): opening it (WAL, a busy timeout),
telling a molvae cache from another database, creating the schema, and short write
transactions."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from molvae.version import __version__

SCHEMA_VERSION = 1  # the layout read and written; a file with another one is refused

# "MVOC" in the SQLite header: tells our files from other SQLite databases before touching them
APPLICATION_ID = 0x4D564F43
BUSY_TIMEOUT_S = 30.0  # writes are short: a wait this long means a stuck writer, not contention

_SCHEMA = """
CREATE TABLE IF NOT EXISTS molvae_oracle_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scores (
    objective TEXT NOT NULL, version TEXT NOT NULL, smiles TEXT NOT NULL,
    score REAL, status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    reason TEXT NOT NULL DEFAULT '', seconds REAL NOT NULL, created TEXT NOT NULL,
    molvae_version TEXT NOT NULL, PRIMARY KEY (objective, version, smiles)
) WITHOUT ROWID;
"""


class OracleCacheError(ValueError):
    """The cache file cannot be used: not SQLite, another program's database, damaged, or written
    by a newer molvae. A ``ValueError``, so the CLI prints it as one line."""


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    # IMMEDIATE takes the write lock up front, so a busy file waits (the busy timeout) instead
    # of failing on a read-to-write upgrade, which SQLite cannot wait for
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: we write BEGIN/COMMIT ourselves; check_same_thread=False only so
    # close() may close it from another thread: each thread still uses its own
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    try:
        _check_or_create(conn, path)
        conn.execute("PRAGMA journal_mode = WAL")  # persistent: a no-op once the file is WAL
        conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: consistent after any crash
    except BaseException:
        conn.close()
        raise
    return conn


def _header(conn: sqlite3.Connection) -> tuple[int, set[str]]:
    # inside a transaction: read apart, a file another process creates in between looks foreign
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]  # "not a database" here
    return app_id, {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _check_or_create(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse another program's database or another schema; create ours in an empty file."""
    conn.execute("BEGIN")
    try:
        app_id, tables = _header(conn)
    finally:
        conn.execute("COMMIT")
    if not tables:
        with transaction(conn):  # two processes creating one file: the second waits, no-ops
            app_id, tables = _header(conn)
            if not tables:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                meta = (str(SCHEMA_VERSION), f"molvae {__version__}")
                conn.execute("INSERT OR IGNORE INTO molvae_oracle_meta VALUES "
                             "('schema_version', ?), ('created_by', ?)", meta)  # fmt: skip
                app_id, tables = APPLICATION_ID, {"scores"}
    if app_id != APPLICATION_ID:
        raise OracleCacheError(
            f"{path} is an SQLite database but not a molvae oracle cache (tables: "
            f"{', '.join(sorted(tables))}); choose another file"
        )
    row = conn.execute("SELECT value FROM molvae_oracle_meta WHERE key='schema_version'").fetchone()
    if row is None or row[0] != str(SCHEMA_VERSION):
        found = "no schema version" if row is None else f"schema {row[0]}"
        raise OracleCacheError(
            f"{path} has {found}; this molvae reads schema {SCHEMA_VERSION} (a newer molvae "
            "wrote it, or it is damaged): upgrade molvae or choose another file"
        )
