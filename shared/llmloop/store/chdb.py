"""``chdb:///PATH``: the ClickHouse engine in-process, data under PATH.

chDB allows one data path per process, and one process per data path: a second
process gets a vague "Error initializing EmbeddedServer". We turn that into
``StoreLocked`` naming the path and what to do.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from llmloop.lifecycle import page_out_code
from llmloop.store.base import QueryResult, StoreError, StoreLocked


class ChdbStore:
    def __init__(self, url: str, path: Path) -> None:
        from chdb import session

        self.url = url
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        with _stderr_captured() as engine_said:
            try:
                self._session = session.Session(str(path))
                error = None
            except Exception as exc:
                error = exc
        if error is not None:
            message = str(error).strip()
            if "already initialized with path" in message:
                raise StoreLocked(
                    f"this process already has another chDB store open ({message}); close it first"
                ) from error
            said = engine_said[0] or message
            locked = "Cannot lock file" in said
            raise StoreLocked(
                f"could not open the embedded store at {path}: "
                + (
                    "another process has it open (only one process may open a chDB data dir); "
                    "stop that process or query through it"
                    if locked
                    else said
                )
            ) from error
        page_out_code("_chdb")
        # chDB sessions are thread-safe, but one statement at a time keeps inserts
        # and queries from the writer thread and the HTTP thread from interleaving.
        self._lock = threading.Lock()

    def _run(self, sql: str, fmt: str, params: Mapping[str, Any] | None) -> Any:
        try:
            with self._lock:
                return self._session.query(sql, fmt, params=_text_params(params))
        except Exception as exc:
            raise StoreError(str(exc).strip()) from exc

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._run(sql, "TabSeparated", params)

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> QueryResult:
        table: pa.Table = self._run(sql, "Arrowtable", params)
        columns = [c.to_pylist() for c in table.columns]
        return QueryResult(list(table.column_names), list(zip(*columns, strict=True)))

    def query_raw(
        self, sql: str, fmt: str = "TabSeparated", params: Mapping[str, Any] | None = None
    ) -> bytes:
        result = self._run(sql, fmt, params)
        return result.bytes() if hasattr(result, "bytes") else bytes(result)

    def insert(self, table: str, data: pa.Table, *, unique_keys: bool = False) -> int:
        if data.num_rows == 0:
            return 0
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, data.schema) as writer:
            writer.write_table(data)
        columns = ", ".join(f"`{name}`" for name in data.column_names)
        settings = " SETTINGS optimize_on_insert = 0" if unique_keys else ""
        conn = self._session._conn
        if conn is None:
            raise StoreError(f"insert into {table} failed: the store is closed")
        try:
            with (
                self._lock,
                conn.send_insert(
                    f"INSERT INTO `{table}` ({columns}){settings}", "ArrowStream"
                ) as inserter,
            ):
                inserter.append(sink.getvalue())
                return int(inserter.finish().rows_written)
        except Exception as exc:
            raise StoreError(f"insert into {table} failed: {str(exc).strip()}") from exc

    def close(self) -> None:
        self._session.close()


@contextlib.contextmanager
def _stderr_captured() -> Iterator[list[str]]:
    """What the engine writes to fd 2 meanwhile (it reports lock errors there, not in the
    exception), as the one item of the yielded list once the block is done."""
    sys.stderr.flush()
    saved = os.dup(2)
    said: list[str] = []
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield said
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            said.append(sink.read().decode(errors="replace").strip())


def _text_params(params: Mapping[str, Any] | None) -> dict[str, str] | None:
    """chDB takes parameters in ClickHouse's text form: lists and maps need literals."""
    if not params:
        return None
    return {name: _text(value, top=True) for name, value in params.items()}


def _time(value: datetime) -> str:
    """An aware time as UTC (the columns' zone); a naive one is taken as UTC."""
    offset = value.utcoffset()
    if offset:
        value -= offset
    return value.isoformat(" ", "microseconds")[:26]  # without the offset


def _text(value: Any, *, top: bool = False) -> str:
    if value is None:
        return "\\N" if top else "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime):
        text = _time(value)
    elif isinstance(value, list | tuple | set):
        items = list(value)
        # Ids and times need no escaping: joined at once (a batch's dedup look-up passes
        # thousands; one call per item cost ~2 us each).
        if all(type(v) is uuid.UUID for v in items):
            return "[" + ",".join(f"'{v}'" for v in items) + "]"
        if all(isinstance(v, datetime) for v in items):
            return "[" + ",".join(f"'{_time(v)}'" for v in items) + "]"
        return "[" + ",".join(_text(v) for v in items) + "]"
    elif isinstance(value, dict):
        return "{" + ",".join(f"{_text(k)}:{_text(v)}" for k, v in value.items()) + "}"
    else:
        text = str(value) if isinstance(value, uuid.UUID) else value
    # ClickHouse reads parameter values in its escaped text form (like TSV).
    escaped = str(text).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
    return escaped if top else "'" + escaped.replace("'", "\\'") + "'"
