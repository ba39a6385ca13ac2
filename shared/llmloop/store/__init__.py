"""The store port and its adapters, chosen by URL scheme."""

from __future__ import annotations

from pathlib import Path

from llmloop.store.base import QueryResult, Store, StoreError, StoreLocked
from llmloop.urls import redact_url

__all__ = ["QueryResult", "Store", "StoreError", "StoreLocked", "open_store"]


def open_store(url: str) -> Store:
    """Open ``chdb:///PATH`` (embedded) or ``clickhouse://HOST:PORT[/DB]`` (server)."""
    shown = redact_url(url)  # errors name the URL, never its password
    scheme, sep, rest = url.partition("://")
    if scheme == "chdb" and sep:
        if not rest.startswith("/") or len(rest) < 2:
            raise ValueError(
                f"store URL {shown!r}: expected chdb:///relative/path or chdb:////abs/path"
            )
        from llmloop.store.chdb import ChdbStore

        return ChdbStore(url, Path(rest[1:]))
    if scheme in {"clickhouse", "clickhouses"} and sep:
        from llmloop.store.clickhouse import ClickHouseStore

        return ClickHouseStore(url)
    raise ValueError(f"store URL {shown!r}: use chdb:///PATH or clickhouse://HOST:PORT[/DB]")
