"""Projects' API keys, stored hashed.

Two places keys can live, one per runtime:

* ``KeyStore``: a SQLite file under the data dir (WAL mode), which
  ``llmloop keys create|list|revoke`` writes while ``llmloop up`` or
  ``llmloop ingest`` reads it: SQLite serialises the writers, readers never block.
* ``KeyFile``: a read-only text file of ``PROJECT SHA256`` lines, written by
  ``llmloop keys export``. Several ingest replicas (Kubernetes) mount the same
  Secret; the file is re-read when it changes, so a revocation is a Secret update.

A key is 32 random bytes, so a plain SHA-256 is enough to store it: a slow
password hash protects guessable secrets and would cost every request.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from llmloop.events import PROJECT_ID_PATTERN
from llmloop.localdb import connect, open_db

KEY_PREFIX = "llk_"
_PROJECT = re.compile(PROJECT_ID_PATTERN)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def new_key() -> str:
    """A fresh key: a recognisable prefix and 32 random bytes."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """What is stored for ``key``: its SHA-256, hex."""
    return hashlib.sha256(key.encode()).hexdigest()


def check_project(project: str) -> str:
    """``project`` if it is a valid project id, else a ``ValueError`` that says what is valid."""
    if not _PROJECT.match(project):
        raise ValueError(
            f"project {project!r}: use 1-64 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return project


@dataclass(frozen=True)
class KeyInfo:
    """A stored key, without the key itself."""

    key_id: str  # the first 12 hex characters of its hash: safe to show and to revoke by
    project: str
    created_at: str
    revoked_at: str | None
    note: str


# The key store's schema, oldest first (llmloop.localdb); append, never edit.
_MIGRATIONS = [
    "CREATE TABLE IF NOT EXISTS api_keys ("
    " hash TEXT PRIMARY KEY, project TEXT NOT NULL, created_at TEXT NOT NULL,"
    " revoked_at TEXT, note TEXT NOT NULL DEFAULT '')",
]


class KeyStore:
    """Hashed keys in a SQLite file, safe to change while ingest reads it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        open_db(path, _MIGRATIONS, what="the API key store").close()

    def _connect(self) -> sqlite3.Connection:
        return connect(self.path)

    def create(self, project: str, note: str = "") -> tuple[str, KeyInfo]:
        """A new key for ``project``: the key (shown once, never stored) and its info."""
        check_project(project)
        key = new_key()
        digest = hash_key(key)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._connect() as db:
            db.execute(
                "INSERT INTO api_keys (hash, project, created_at, note) VALUES (?, ?, ?, ?)",
                (digest, project, now, note),
            )
        return key, KeyInfo(digest[:12], project, now, None, note)

    def revoke(self, key_id: str) -> KeyInfo:
        """Revoke the key whose id (a hash prefix of 8+ characters) is ``key_id``."""
        if len(key_id) < 8 or not re.fullmatch(r"[0-9a-f]+", key_id):
            raise ValueError(f"key id {key_id!r}: give at least 8 hex characters from `keys list`")
        matches = [k for k in self.list_keys() if k.key_id.startswith(key_id[:12])]
        if not matches:
            raise ValueError(f"no key with id {key_id!r}; see `llmloop keys list`")
        if len(matches) > 1:
            raise ValueError(f"key id {key_id!r} is ambiguous; give more characters")
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._connect() as db:
            db.execute(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE hash LIKE ?",
                (now, matches[0].key_id + "%"),
            )
        return next(k for k in self.list_keys() if k.key_id == matches[0].key_id)

    def list_keys(self, project: str | None = None) -> list[KeyInfo]:
        """Every key (revoked ones too), oldest first."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT hash, project, created_at, revoked_at, note FROM api_keys "
                "WHERE ? IS NULL OR project = ? ORDER BY created_at, hash",
                (project, project),
            ).fetchall()
        return [KeyInfo(h[:12], p, c, r, n) for h, p, c, r, n in rows]

    def active_hashes(self) -> list[tuple[str, str]]:
        """(project, hash) of every key that is not revoked: what ``export`` writes."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT project, hash FROM api_keys WHERE revoked_at IS NULL ORDER BY project"
            ).fetchall()
        return [(p, h) for p, h in rows]

    def project_for_hash(self, digest: str) -> str | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT project FROM api_keys WHERE hash = ? AND revoked_at IS NULL", (digest,)
            ).fetchone()
        return None if row is None else str(row[0])


class KeyFile:
    """``PROJECT SHA256`` lines ('#' starts a comment), re-read when the file changes."""

    def __init__(self, path: Path, check_every_s: float = 2.0) -> None:
        self.path = path
        self.check_every_s = check_every_s
        self._keys: dict[str, str] = {}
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._reload()  # a missing or malformed file is an error at start, not a silent 401

    def _reload(self) -> None:
        stat = self.path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        keys: dict[str, str] = {}
        for number, line in enumerate(self.path.read_text().splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 2 or not _HEX64.match(parts[1]) or not _PROJECT.match(parts[0]):
                raise ValueError(
                    f"{self.path}:{number}: expected 'PROJECT SHA256-HEX' (see llmloop keys export)"
                )
            keys[parts[1]] = parts[0]
        self._keys, self._stamp = keys, stamp

    def project_for_hash(self, digest: str) -> str | None:
        now = time.monotonic()
        if now - self._checked > self.check_every_s:
            self._checked = now
            # A Secret mid-update: keep serving the keys we had.
            with contextlib.suppress(OSError, ValueError):
                self._reload()
        return self._keys.get(digest)


def write_key_file(path: Path, store: KeyStore) -> int:
    """Write ``store``'s active keys as a key file; returns how many."""
    rows = store.active_hashes()
    lines = ["# llmloop API keys: PROJECT SHA256(key). Generated by `llmloop keys export`."]
    lines += [f"{project} {digest}" for project, digest in rows]
    path.write_text("\n".join(lines) + "\n")
    return len(rows)


LOCAL_KEY_FILE = "local.key"
LOCAL_PROJECT = "default"


def ensure_local_key(data_dir: Path, keys_db: Path | None = None) -> str:
    """The key ``llmloop up`` uses for local traffic: ``DATA_DIR/local.key`` (mode 0600).

    Made once for project ``default`` and kept while it is active, so apps and
    the demo on this machine read the file instead of asking for a key. The
    plaintext lives only in that file, readable by its owner, like the data.
    """
    path = data_dir / LOCAL_KEY_FILE
    store = KeyStore(keys_db or data_dir / "keys.db")
    with contextlib.suppress(OSError):
        key = path.read_text().strip()
        if store.project_for_hash(hash_key(key)) is not None:
            return key
    key, _ = store.create(LOCAL_PROJECT, note="local key of llmloop up")
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    tmp.replace(path)
    return key
