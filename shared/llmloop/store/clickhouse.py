"""``clickhouse://[USER[:PASSWORD]@]HOST[:PORT][/DATABASE][?secure=true]``: a ClickHouse server.

Runs the same SQL as the embedded adapter through clickhouse-connect (HTTP),
with server-side parameter binding. Exercised in tests when
``LLMLOOP_CLICKHOUSE_URL`` points at a server.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pyarrow as pa

from llmloop.redaction import redact_url
from llmloop.store.base import QueryResult, StoreError


class ClickHouseStore:
    def __init__(self, url: str) -> None:
        import clickhouse_connect

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
            )
        except Exception as exc:
            raise StoreError(f"ClickHouse at {self.url} is unreachable: {exc}") from exc

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
        try:
            return bytes(self._client.raw_query(sql, parameters=dict(params or {}), fmt=fmt))
        except Exception as exc:
            raise StoreError(str(exc).strip()) from exc

    def insert(self, table: str, data: pa.Table) -> int:
        if data.num_rows == 0:
            return 0
        try:
            self._client.insert_arrow(table, data)
        except Exception as exc:
            raise StoreError(f"insert into {table} failed: {str(exc).strip()}") from exc
        return data.num_rows

    def close(self) -> None:
        self._client.close()
