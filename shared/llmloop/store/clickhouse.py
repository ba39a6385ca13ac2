"""``clickhouse://[USER[:PASSWORD]@]HOST[:PORT][/DATABASE][?secure=true]``: a ClickHouse server.

Runs the same SQL as the embedded adapter through clickhouse-connect (HTTP),
with server-side parameter binding. Its tests (tests/integration/test_store.py) run
against ``LLMLOOP_CLICKHOUSE_URL`` when that names a server, and otherwise against the
chDB HTTP harness (``llmloop.testing.clickhouse_http``), which is a test fixture only.

Supported servers: ClickHouse ``MIN_SERVER`` (24.8 LTS) or newer, self-hosted single
node, a cluster (``LLMLOOP_CLICKHOUSE_CLUSTER``, see ``llmloop.store.cluster``) or
ClickHouse Cloud (``?secure=true``, no cluster name). The engine every test runs is
chDB's (ClickHouse 26.9); older servers are refused at connect with the version named.

Time never depends on the server's defaults: parameters are typed
``DateTime64(3, 'UTC')`` and aware datetimes are converted to it by the client, Arrow
inserts carry UTC timestamps, and ``tz_mode="schema"`` returns ``DateTime64(3, 'UTC')``
values as aware UTC datetimes, as the embedded adapter does (clickhouse-connect's
default would return them naive).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pyarrow as pa

from llmloop.store.base import QueryResult, StoreError
from llmloop.urls import redact_url

MIN_SERVER = (24, 8)
_TRAILING_FORMAT = re.compile(r"\s+FORMAT\s+(\w+)\s*;?\s*$", re.I)


def check_server_version(version: str, url: str = "") -> None:
    """Refuse a server older than ``MIN_SERVER``, naming both versions."""
    try:
        found = tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        return  # a build that does not say; let the SQL tell
    if found < MIN_SERVER:
        want = ".".join(map(str, MIN_SERVER))
        raise StoreError(f"ClickHouse at {url or 'the server'} is {version}; llmloop needs {want}+")


class ClickHouseStore:
    def __init__(self, url: str) -> None:
        import clickhouse_connect
        from clickhouse_connect import common

        # Map parameters in ClickHouse's {'k':'v'} text; the client's default (JSON) is
        # not what a Map(String, String) placeholder parses (found by the harness tests).
        common.set_setting("dict_parameter_format", "map")
        parts = urlsplit(url)
        # Never echo a password: errors and logs name the URL with it masked.
        self.url = redact_url(url)
        query = parse_qs(parts.query)
        secure = query.get("secure", ["false"])[0].lower() in {"1", "true"}
        try:
            self._client = clickhouse_connect.get_client(
                host=parts.hostname or "localhost",
                port=parts.port or (8443 if secure else 8123),
                username=unquote(parts.username or "default"),
                password=unquote(parts.password or ""),
                database=parts.path.strip("/") or "default",
                secure=secure,
                tz_mode="schema",
                # One store serves several threads (the processor's sink and its
                # statistics): a ClickHouse session runs one query at a time and refuses
                # the next ("concurrent queries within the same session", found by the
                # replica test), and llmloop keeps no state in a session.
                autogenerate_session_id=False,
            )
        except Exception as exc:
            raise StoreError(f"ClickHouse at {self.url} is unreachable: {exc}") from exc
        self.server_version = str(self._client.server_version)
        check_server_version(self.server_version, self.url)

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        try:
            self._client.command(sql, parameters=dict(params or {}))
        except Exception as exc:
            raise StoreError(str(exc).strip()) from exc

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> QueryResult:
        try:
            result = self._client.query(sql, parameters=dict(params or {}))
        except Exception as exc:
            raise StoreError(str(exc).strip()) from exc
        return QueryResult(list(result.column_names), [tuple(r) for r in result.result_rows])

    def query_raw(
        self, sql: str, fmt: str = "TabSeparated", params: Mapping[str, Any] | None = None
    ) -> bytes:
        # A FORMAT clause in the SQL wins, as on chDB; the client appends its own.
        if trailing := _TRAILING_FORMAT.search(sql):
            sql, fmt = sql[: trailing.start()], trailing[1]
        try:
            return bytes(self._client.raw_query(sql, parameters=dict(params or {}), fmt=fmt))
        except Exception as exc:
            raise StoreError(str(exc).strip()) from exc

    def insert(self, table: str, data: pa.Table, *, unique_keys: bool = False) -> int:
        if data.num_rows == 0:
            return 0
        settings = {"optimize_on_insert": 0} if unique_keys else None
        try:
            self._client.insert_arrow(table, data, settings=settings)
        except Exception as exc:
            raise StoreError(f"insert into {table} failed: {str(exc).strip()}") from exc
        return int(data.num_rows)

    def close(self) -> None:
        self._client.close()
