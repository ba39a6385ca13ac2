"""Console tokens: who may open the console, and which projects they may see.

Separate from the ingest keys that apps hold (an app's key must not open a
browser session, and a person's token must not send events). A token is 32
random bytes, stored as its SHA-256 in a SQLite file (WAL: ``llmloop console
token create`` writes while a running console reads), with the projects it is
scoped to. ``*`` is every project: the local user of ``llmloop up``, who owns
the data dir anyway.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from llmloop.events import PROJECT_ID_PATTERN
from llmloop.localdb import connect, open_db

TOKEN_PREFIX = "llc_"
ALL_PROJECTS = "*"
LOCAL_TOKEN_FILE = "console.token"
_PROJECT = re.compile(PROJECT_ID_PATTERN)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Scope:
    """The projects a signed-in person may see."""

    token_id: str  # the first 12 hex characters of the token's hash
    projects: frozenset[str]
    note: str = ""

    @property
    def everything(self) -> bool:
        return ALL_PROJECTS in self.projects

    def allows(self, project: str) -> bool:
        return self.everything or project in self.projects

    def visible(self, known: list[str]) -> list[str]:
        """The projects of ``known`` this scope may see (all of them for ``*``)."""
        return [p for p in known if self.allows(p)]


@dataclass(frozen=True)
class TokenInfo:
    token_id: str
    projects: list[str]
    created_at: str
    revoked_at: str | None
    note: str


# The token store's schema, oldest first (llmloop.localdb); append, never edit.
_MIGRATIONS = [
    "CREATE TABLE IF NOT EXISTS console_tokens ("
    " hash TEXT PRIMARY KEY, projects TEXT NOT NULL, created_at TEXT NOT NULL,"
    " revoked_at TEXT, note TEXT NOT NULL DEFAULT '')",
]


class ConsoleTokens:
    """Hashed console tokens with their project scopes, in a SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        open_db(path, _MIGRATIONS, what="the console token store").close()

    def _connect(self) -> sqlite3.Connection:
        return connect(self.path)

    def create(self, projects: list[str], note: str = "") -> tuple[str, TokenInfo]:
        """A new token (shown once, never stored) scoped to ``projects``."""
        if not projects:
            raise ValueError("a console token needs at least one project (or '*' for all)")
        for project in projects:
            if project != ALL_PROJECTS and not _PROJECT.match(project):
                raise ValueError(f"project {project!r}: not a valid project id")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        digest = hash_token(token)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        scoped = ",".join(sorted(set(projects)))
        with self._connect() as db:
            db.execute(
                "INSERT INTO console_tokens (hash, projects, created_at, note) VALUES (?, ?, ?, ?)",
                (digest, scoped, now, note),
            )
        return token, TokenInfo(digest[:12], scoped.split(","), now, None, note)

    def scope_for(self, token: str) -> Scope | None:
        """The scope of ``token``, or None if it is unknown or revoked."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        digest = hash_token(token)
        with self._connect() as db:
            row = db.execute(
                "SELECT projects, note FROM console_tokens WHERE hash = ? AND revoked_at IS NULL",
                (digest,),
            ).fetchone()
        if row is None:
            return None
        return Scope(digest[:12], frozenset(str(row[0]).split(",")), str(row[1]))

    def list_tokens(self) -> list[TokenInfo]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT hash, projects, created_at, revoked_at, note FROM console_tokens "
                "ORDER BY created_at, hash"
            ).fetchall()
        return [TokenInfo(h[:12], p.split(","), c, r, n) for h, p, c, r, n in rows]

    def revoke(self, token_id: str) -> TokenInfo:
        if len(token_id) < 8 or not re.fullmatch(r"[0-9a-f]+", token_id):
            raise ValueError(f"token id {token_id!r}: give 8+ hex characters from `token list`")
        matches = [t for t in self.list_tokens() if t.token_id.startswith(token_id[:12])]
        if len(matches) != 1:
            raise ValueError(f"token id {token_id!r} matches {len(matches)} tokens")
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._connect() as db:
            db.execute(
                "UPDATE console_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE hash LIKE ?",
                (now, matches[0].token_id + "%"),
            )
        return next(t for t in self.list_tokens() if t.token_id == matches[0].token_id)


def tokens_path(data_dir: Path) -> Path:
    return data_dir / "console.db"


def ensure_local_token(data_dir: Path) -> str:
    """The sign-in token of the local user of ``llmloop up``: ``DATA_DIR/console.token`` (0600).

    Scoped to every project (the data dir's owner can read the store anyway);
    made once and kept while it is active, so the printed link stays the same.
    """
    path = data_dir / LOCAL_TOKEN_FILE
    tokens = ConsoleTokens(tokens_path(data_dir))
    with contextlib.suppress(OSError):
        token = path.read_text().strip()
        if tokens.scope_for(token) is not None:
            return token
    token, _ = tokens.create([ALL_PROJECTS], note="local user of llmloop up")
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    tmp.replace(path)
    return token
