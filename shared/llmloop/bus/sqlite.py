"""``sqlite:///PATH``: the durable local log of the embedded runtime.

WAL mode with ``synchronous=FULL``: an append returns after its transaction
is fsync'd, so an event that ingest acknowledged survives ``kill -9`` and a
power cut. Consumer offsets live in the same file and commit the same way.
Several processes may share the file (SQLite locks it); one thread per
process talks to it, off the event loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import orjson

from llmloop.bus.base import BusUnavailable, Message, Record
from llmloop.bus.local import LocalLogBus, LogStorage
from llmloop.localdb import open_db

T = TypeVar("T")

RETENTION_S = 7 * 24 * 3600  # consumed records older than this are trimmed at start

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    topic TEXT NOT NULL,
    offset INTEGER NOT NULL,
    key BLOB,
    value BLOB NOT NULL,
    headers BLOB,
    appended_at REAL NOT NULL,
    PRIMARY KEY (topic, offset)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS offsets (
    grp TEXT NOT NULL,
    topic TEXT NOT NULL,
    offset INTEGER NOT NULL,
    PRIMARY KEY (grp, topic)
) WITHOUT ROWID;
"""


class SqliteStorage(LogStorage):
    shared_between_processes = True

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmloop-sqlite")

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            if self._conn is None:
                raise BusUnavailable(f"local log {self.path} is not open")
            try:
                return fn(self._conn)
            except sqlite3.Error as exc:
                raise BusUnavailable(f"local log {self.path}: {exc}") from exc

        try:
            future = asyncio.get_running_loop().run_in_executor(self._thread, call)
        except RuntimeError as closed:  # the executor shut down in close()
            raise BusUnavailable(f"local log {self.path} is closed") from closed
        return await future

    async def open(self) -> None:
        def connect() -> None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # fsync the WAL at every commit: publish returns only when a record is durable.
            conn = open_db(self.path, [_SCHEMA], what="the local log")
            # Trim what every group consumed, but keep each topic's newest record:
            # it holds the next offset, which must never go back (a group whose
            # commit is past a reused offset would skip the new records).
            conn.execute(
                "DELETE FROM log WHERE appended_at < ? AND offset < "
                "(SELECT MIN(o.offset) FROM offsets o WHERE o.topic = log.topic) AND offset < "
                "(SELECT MAX(newest.offset) FROM log newest WHERE newest.topic = log.topic)",
                (time.time() - RETENTION_S,),
            )
            self._conn = conn

        await asyncio.get_running_loop().run_in_executor(self._thread, connect)

    async def close(self) -> None:
        def disconnect() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        if self._conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, disconnect)
        self._thread.shutdown(wait=True)

    async def append(self, topic: str, records: Sequence[Record]) -> int:
        now = time.time()

        def append(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            try:
                (start,) = conn.execute(
                    "SELECT COALESCE(MAX(offset) + 1, 0) FROM log WHERE topic = ?", (topic,)
                ).fetchone()
                conn.executemany(
                    "INSERT INTO log VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        (topic, start + i, r.key, r.value, _encode_headers(r.headers), now)
                        for i, r in enumerate(records)
                    ),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return int(start)

        return await self._run(append)

    async def read(self, topic: str, from_offset: int, limit: int) -> list[Message]:
        def read(conn: sqlite3.Connection) -> list[Message]:
            rows = conn.execute(
                "SELECT offset, key, value, headers FROM log "
                "WHERE topic = ? AND offset >= ? ORDER BY offset LIMIT ?",
                (topic, from_offset, limit),
            ).fetchall()
            return [
                Message(topic, 0, offset, key, value, _decode_headers(headers))
                for offset, key, value, headers in rows
            ]

        return await self._run(read)

    async def committed(self, group: str, topic: str) -> int:
        def committed(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT offset FROM offsets WHERE grp = ? AND topic = ?", (group, topic)
            ).fetchone()
            return int(row[0]) if row else 0

        return await self._run(committed)

    async def end_offset(self, topic: str) -> int:
        def end(conn: sqlite3.Connection) -> int:
            (offset,) = conn.execute(
                "SELECT COALESCE(MAX(offset) + 1, 0) FROM log WHERE topic = ?", (topic,)
            ).fetchone()
            return int(offset)

        return await self._run(end)

    async def commit(self, group: str, positions: dict[str, int]) -> None:
        def commit(conn: sqlite3.Connection) -> None:
            with conn:
                conn.executemany(
                    "INSERT INTO offsets VALUES (?, ?, ?) "
                    "ON CONFLICT (grp, topic) DO UPDATE SET offset = excluded.offset",
                    [(group, topic, offset) for topic, offset in positions.items()],
                )

        await self._run(commit)


def _encode_headers(headers: tuple[tuple[str, bytes], ...]) -> bytes | None:
    return orjson.dumps([[k, v.hex()] for k, v in headers]) if headers else None


def _decode_headers(raw: bytes | None) -> tuple[tuple[str, bytes], ...]:
    return tuple((k, bytes.fromhex(v)) for k, v in orjson.loads(raw)) if raw else ()


def sqlite_bus(url: str, path: Path) -> LocalLogBus:
    return LocalLogBus(url, SqliteStorage(path))
