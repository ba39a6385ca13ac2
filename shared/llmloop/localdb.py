"""Local state files: one way to open a SQLite file, with a schema version and migrations.

Every piece of state a service keeps on its own disk (the local log, API keys,
alerting's journal, retraining's join and job ledger) opens through ``open_db``:

* the same pragmas everywhere: WAL (readers never block the writer), a 30 s
  busy timeout (two processes on one file wait instead of failing), autocommit
  (callers say ``BEGIN`` / ``with conn:`` where they need a transaction), and
  ``synchronous=FULL`` where losing the last commit in a power cut is not allowed;
* a schema version in the file, per owner (table ``llmloop_schema``: two
  modules may keep their tables in one file, as retraining's join and ledger
  do): ``migrations`` is the list of scripts that build the owner's schema,
  oldest first; those the file has not had yet run in order, each in one
  transaction with its version bump. A file written by a newer llmloop (a
  version above the scripts we know) is refused with a message that says so,
  never half-read.

Changing a schema means appending a script, never editing one that shipped.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path


class LocalStateError(RuntimeError):
    """A local state file cannot be used (written by a newer version, or unreadable)."""


def open_db(
    path: Path,
    migrations: Sequence[str],
    *,
    what: str,
    owner: str = "main",
    durable: bool = True,
    timeout_s: float = 30.0,
) -> sqlite3.Connection:
    """``path`` opened, created if absent, at the newest of ``migrations``.

    ``what`` names the file in errors ("the alerting journal"); ``durable`` fsyncs
    every commit (``synchronous=FULL``), else ``NORMAL`` (WAL: no corruption, the
    last commits may be lost in a power cut). The connection may be used from any
    thread, one at a time.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=timeout_s
        )
    except sqlite3.Error as exc:
        raise LocalStateError(f"{what} {path}: {exc}") from exc
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        migrate_db(conn, migrations, what=f"{what} {path}", owner=owner)
    except BaseException:
        conn.close()
        raise
    return conn


def connect(path: Path, *, timeout_s: float = 30.0) -> sqlite3.Connection:
    """Another connection to a file ``open_db`` already brought up to date (same pragmas:
    WAL and the busy timeout are kept by the file and set here)."""
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=timeout_s)


_VERSIONS = "CREATE TABLE IF NOT EXISTS llmloop_schema (owner TEXT PRIMARY KEY, version INTEGER)"


def schema_version(conn: sqlite3.Connection, owner: str = "main") -> int:
    conn.execute(_VERSIONS)
    row = conn.execute("SELECT version FROM llmloop_schema WHERE owner = ?", (owner,)).fetchone()
    return int(row[0]) if row else 0


def migrate_db(
    conn: sqlite3.Connection, migrations: Sequence[str], *, what: str, owner: str = "main"
) -> int:
    """Run the scripts of ``migrations`` that ``owner``'s schema in ``conn``'s file has not
    had; its new version."""
    current = schema_version(conn, owner)
    if current > len(migrations):
        raise LocalStateError(
            f"{what} is at schema version {current}, newer than this llmloop knows "
            f"({len(migrations)}): it was written by a newer release; upgrade, or point "
            "this one at another data directory"
        )
    for version, script in enumerate(migrations[current:], start=current + 1):
        # executescript commits what is open first; the script and its version bump
        # then go in one transaction, so a crash leaves the file at one version or the next.
        bump = (
            f"INSERT INTO llmloop_schema VALUES ('{owner}', {version}) "
            "ON CONFLICT (owner) DO UPDATE SET version = excluded.version"
        )
        try:
            conn.executescript(f"BEGIN IMMEDIATE;\n{script}\n;{bump};COMMIT;")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise LocalStateError(f"{what}: schema version {version} failed: {exc}") from exc
    return len(migrations)
