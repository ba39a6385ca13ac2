"""The alerting service's own recoverable state: one SQLite file (WAL, fsync at commit).

It holds the alert states, the metric event ids already evaluated, the
notification outbox (with attempts and dead letters) and a bus outbox. One
transaction takes a batch's state changes, its notifications and the events to
publish, so a crash at any point either loses the whole batch (the bus
redelivers it: offsets are committed after this) or none of it; the id list of
evaluated metrics makes the redelivery a no-op instead of a second firing.
Notifications and bus events leave through their outboxes afterwards: at least
once, with the same idempotency key / event id every time.

Not ClickHouse: only the processor writes there (DESIGN, "one writer").
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson

from llmloop.bus import Record
from llmloop.events import AlertStateChanged
from llmloop.localdb import open_db
from llmloop_alerting.state import AlertState

T = TypeVar("T")

KEEP_S = 7 * 24 * 3600  # evaluated ids and delivered notifications are kept this long

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    fingerprint TEXT PRIMARY KEY,
    rule TEXT NOT NULL,
    state BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS processed (
    event_id TEXT PRIMARY KEY,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id TEXT PRIMARY KEY,
    receiver TEXT NOT NULL,
    alert BLOB NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    state TEXT NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    last_status INTEGER,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_at);
CREATE TABLE IF NOT EXISTS bus_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    key BLOB,
    value BLOB NOT NULL
);
"""


@dataclass(frozen=True)
class Notification:
    """One alert message for one receiver; ``id`` is its idempotency key."""

    id: str
    receiver: str
    alert: AlertStateChanged
    attempts: int = 0
    state: str = "pending"  # pending | delivered | dead
    next_at: float = 0.0
    last_error: str = ""
    last_status: int | None = None
    created_at: float = 0.0


def _encode_state(state: AlertState) -> bytes:
    return orjson.dumps(asdict(state))


def _decode_state(raw: bytes) -> AlertState:
    data: dict[str, Any] = orjson.loads(raw)
    for key in (
        "active_since",
        "starts_at",
        "ends_at",
        "last_seen",
        "observed_until",
        "last_notified_at",
    ):
        if data.get(key):
            data[key] = datetime.fromisoformat(data[key])
    data["recent"] = tuple(data.get("recent", ()))
    return AlertState(**data)


def _notification(row: sqlite3.Row | tuple[Any, ...]) -> Notification:
    id_, receiver, alert, attempts, state, next_at, error, status, created = row
    return Notification(
        id_,
        receiver,
        AlertStateChanged.model_validate_json(alert),
        attempts,
        state,
        next_at,
        error,
        status,
        created,
    )


_COLUMNS = "id, receiver, alert, attempts, state, next_at, last_error, last_status, created_at"


class Journal:
    """Async access to the state file; one thread talks to SQLite, off the event loop."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmloop-alerting")

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            if self._conn is None:
                raise RuntimeError(f"alerting state {self.path} is not open")
            return fn(self._conn)

        return await asyncio.get_running_loop().run_in_executor(self._thread, call)

    def open_sync(self) -> None:
        """Open (creating the file and tables) from any thread; the CLI uses it directly."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # durable: a delivered alert is never forgotten (synchronous=FULL)
        conn = open_db(self.path, [_SCHEMA], what="the alerting journal")
        cutoff = time.time() - KEEP_S
        with conn:
            conn.execute("DELETE FROM processed WHERE at < ?", (cutoff,))
            conn.execute(
                "DELETE FROM outbox WHERE state = 'delivered' AND updated_at < ?", (cutoff,)
            )
        self._conn = conn

    async def open(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self.open_sync)

    async def close(self) -> None:
        def disconnect(conn: sqlite3.Connection) -> None:
            conn.close()
            self._conn = None

        if self._conn is not None:
            await self._run(disconnect)
        self._thread.shutdown(wait=True)

    def close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._thread.shutdown(wait=False)

    # --- alert states ------------------------------------------------------------------

    async def load_states(self) -> dict[str, AlertState]:
        def load(conn: sqlite3.Connection) -> dict[str, AlertState]:
            rows = conn.execute("SELECT fingerprint, state FROM alerts").fetchall()
            return {fp: _decode_state(raw) for fp, raw in rows}

        return await self._run(load)

    async def unseen(self, event_ids: Sequence[str]) -> set[str]:
        """The ids among ``event_ids`` that were never evaluated."""

        def unseen(conn: sqlite3.Connection) -> set[str]:
            seen: set[str] = set()
            for i in range(0, len(event_ids), 500):
                chunk = event_ids[i : i + 500]
                marks = ",".join("?" * len(chunk))
                seen.update(
                    r[0]
                    for r in conn.execute(
                        f"SELECT event_id FROM processed WHERE event_id IN ({marks})", chunk
                    )
                )
            return set(event_ids) - seen

        return await self._run(unseen)

    async def commit(
        self,
        *,
        states: Iterable[AlertState] = (),
        forget: Iterable[str] = (),
        notifications: Iterable[Notification] = (),
        records: Iterable[tuple[str, Record]] = (),
        processed: Iterable[str] = (),
        partition: int | None = None,  # one file holds every partition: ignored
    ) -> None:
        """Everything a batch (or a tick) changed, in one transaction."""
        now = time.time()
        state_rows = [(s.fingerprint, s.rule, _encode_state(s)) for s in states]
        forget_rows = [(fp,) for fp in forget]
        outbox_rows = [
            (
                n.id,
                n.receiver,
                n.alert.model_dump_json().encode(),
                n.attempts,
                n.state,
                n.next_at or now,
                n.last_error,
                n.last_status,
                now,
                now,
            )
            for n in notifications
        ]
        bus_rows = [(topic, r.key, r.value) for topic, r in records]
        processed_rows = [(event_id, now) for event_id in processed]

        def write(conn: sqlite3.Connection) -> None:
            with conn:
                conn.executemany("INSERT OR REPLACE INTO alerts VALUES (?, ?, ?)", state_rows)
                conn.executemany("DELETE FROM alerts WHERE fingerprint = ?", forget_rows)
                conn.executemany(
                    f"INSERT OR IGNORE INTO outbox ({_COLUMNS}, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    outbox_rows,
                )
                conn.executemany(
                    "INSERT INTO bus_outbox (topic, key, value) VALUES (?, ?, ?)", bus_rows
                )
                conn.executemany("INSERT OR IGNORE INTO processed VALUES (?, ?)", processed_rows)

        await self._run(write)

    # --- notification outbox -----------------------------------------------------------

    async def due(self, now: float, limit: int, exclude: set[str]) -> list[Notification]:
        """Pending notifications whose next attempt is due, oldest first."""

        def due(conn: sqlite3.Connection) -> list[Notification]:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE state = 'pending' AND next_at <= ? "
                "ORDER BY next_at LIMIT ?",
                (now, limit + len(exclude)),
            ).fetchall()
            return [_notification(r) for r in rows if r[0] not in exclude][:limit]

        return await self._run(due)

    async def record_attempts(
        self, results: Sequence[tuple[Notification, Sequence[tuple[str, Record]]]]
    ) -> None:
        """Store attempts' results (new attempts count, state, next time) and their events."""
        now = time.time()

        def write(conn: sqlite3.Connection) -> None:
            with conn:
                conn.executemany(
                    "UPDATE outbox SET attempts = ?, state = ?, next_at = ?, last_error = ?, "
                    "last_status = ?, updated_at = ? WHERE id = ?",
                    [
                        (n.attempts, n.state, n.next_at, n.last_error, n.last_status, now, n.id)
                        for n, _ in results
                    ],
                )
                conn.executemany(
                    "INSERT INTO bus_outbox (topic, key, value) VALUES (?, ?, ?)",
                    [(topic, r.key, r.value) for _, records in results for topic, r in records],
                )

        await self._run(write)

    def dead_letters_sync(self) -> list[Notification]:
        assert self._conn is not None
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE state = 'dead' ORDER BY updated_at"
        ).fetchall()
        return [_notification(r) for r in rows]

    def replay_sync(self, ids: Sequence[str] | None) -> list[str]:
        """Put dead letters back in the queue (all when ``ids`` is None); returns their ids.

        Attempts start over; the idempotency key stays, so a receiver that did get
        an earlier try can recognise the repeat.
        """
        assert self._conn is not None
        with self._conn as conn:
            if ids is None:
                chosen = [r[0] for r in conn.execute("SELECT id FROM outbox WHERE state = 'dead'")]
            else:
                chosen = [
                    r[0]
                    for i in ids
                    for r in conn.execute(
                        "SELECT id FROM outbox WHERE state = 'dead' AND id LIKE ? || '%'", (i,)
                    )
                ]
            conn.executemany(
                "UPDATE outbox SET state = 'pending', attempts = 0, next_at = ?, updated_at = ? "
                "WHERE id = ?",
                [(time.time(), time.time(), i) for i in chosen],
            )
        return chosen

    # --- bus outbox --------------------------------------------------------------------

    async def pending_records(self, limit: int) -> list[tuple[int, str, Record]]:
        def read(conn: sqlite3.Connection) -> list[tuple[int, str, Record]]:
            rows = conn.execute(
                "SELECT seq, topic, key, value FROM bus_outbox ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
            return [(seq, topic, Record(key, value)) for seq, topic, key, value in rows]

        return await self._run(read)

    async def published(self, up_to_seq: int) -> None:
        def delete(conn: sqlite3.Connection) -> None:
            with conn:
                conn.execute("DELETE FROM bus_outbox WHERE seq <= ?", (up_to_seq,))

        await self._run(delete)
