"""A store that answers the console's queries from a list of rows and records what it was asked."""

from __future__ import annotations

from typing import Any

from llmloop.store import QueryResult


class RecordingStore:
    url = "fake://"

    def __init__(self, projects: list[str]) -> None:
        self.projects = projects
        self.asked: list[tuple[str, dict[str, Any]]] = []
        self.versions: list[dict[str, Any]] = []  # model_versions rows

    def query(self, sql: str, params: dict[str, Any] | None = None) -> QueryResult:
        self.asked.append((sql, dict(params or {})))
        if "DISTINCT project_id" in sql:
            return QueryResult(["project_id"], [(p,) for p in self.projects])
        if "FROM model_versions" in sql:
            mine = [
                v
                for v in self.versions
                if v["project_id"] in params["project"] and v["version"] == params.get("v")
            ]
            columns = list(self.versions[0]) if self.versions else ["version"]
            return QueryResult(columns, [tuple(v.values()) for v in mine])
        return QueryResult(["x"], [])

    def command(self, sql: str, params: Any = None) -> None:
        raise AssertionError("the console never writes the store")

    def insert(self, table: str, data: Any, *, unique_keys: bool = False) -> int:
        raise AssertionError("the console never writes the store")

    def close(self) -> None:
        pass


class RecordingOperations:
    def __init__(self) -> None:
        self.promoted: list[tuple[str, bool]] = []

    async def promote(self, row: dict[str, Any], *, forced: bool) -> None:
        self.promoted.append((row["version"], forced))
