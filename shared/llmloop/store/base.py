"""The store port: the ClickHouse SQL both adapters run unchanged.

``chdb:///PATH`` runs the ClickHouse engine in-process (embedded runtime, tests);
``clickhouse://HOST:PORT[/DB]`` talks to a server (production). Values always
travel as bound parameters (``{name:Type}`` placeholders), never spliced into
SQL text. Inserts take a columnar Arrow table and use ClickHouse's Arrow input
format on both adapters, so type conversions are the engine's, and the same.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pyarrow as pa


class StoreError(Exception):
    """A store operation failed."""


class StoreLocked(StoreError):
    """The embedded store is open in another process."""


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows else None


class Store(Protocol):
    url: str

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run a statement that returns nothing (DDL, INSERT ... SELECT)."""
        ...

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> QueryResult:
        """Run a SELECT and return typed rows."""
        ...

    def query_raw(
        self, sql: str, fmt: str = "TabSeparated", params: Mapping[str, Any] | None = None
    ) -> bytes:
        """Run a query and return its output in a ClickHouse output format (for the CLI)."""
        ...

    def insert(self, table: str, data: pa.Table, *, unique_keys: bool = False) -> int:
        """Insert an Arrow table's columns (by name) into ``table``; returns rows written.

        ``unique_keys``: the caller made sure no two rows share the table's key (the
        writers drop the duplicates of a batch before inserting), so the engine need not
        fold them as it inserts (``optimize_on_insert = 0``: a fifth of an insert's cost,
        bench/processor.py); its merges still fold any that got through."""
        ...

    def close(self) -> None: ...


def split_statements(script: str) -> list[str]:
    """Statements of a SQL script: split at ``;`` that ends a line; comment-only parts dropped."""
    parts = re.split(r";\s*(?:\n|$)", script)
    statements = []
    for part in parts:
        code = "\n".join(line for line in part.splitlines() if not line.strip().startswith("--"))
        if code.strip():
            statements.append(part.strip())
    return statements
