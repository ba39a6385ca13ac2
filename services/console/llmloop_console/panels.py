"""The catalogue's panels on the store port: Grafana's macros become bound parameters.

A panel's SQL is written for the Grafana ClickHouse plugin
(``llmloop.contracts.panels``). Here the same text runs on the store: the
time macros become ``{t_from}``/``{t_to}``/``{step}`` parameters and each
``col IN (${var:singlequote})`` becomes a bound array. The project filter is
always the viewer's scope intersected with what they picked, never empty, so
no panel can show another project's rows; the other filters are "All" when
nothing is picked, as in Grafana.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from llmloop.contracts.panels import VARIABLES, Panel
from llmloop.store import QueryResult, Store

_TIME_FILTER = re.compile(r"\$__timeFilter\(([^)]+)\)")
_TIME_INTERVAL = re.compile(r"\$__timeInterval\(([^)]+)\)")
_IN_VARIABLE = re.compile(r"(\b\w+(?:\['\w+'\])?) IN \(\$\{(\w+):singlequote\}\)")
FILTERS = tuple(name for name, _, _ in VARIABLES)
MAX_POINTS = 240  # time buckets per chart: enough for a wide screen, cheap to draw


@dataclass(frozen=True)
class Filters:
    """What the viewer picked: the time range (epoch seconds) and the four filters."""

    start: int
    end: int
    projects: tuple[str, ...]  # already intersected with the scope; never empty
    model: tuple[str, ...] = ()
    prompt_version: tuple[str, ...] = ()
    model_version: tuple[str, ...] = ()

    @property
    def step(self) -> int:
        """Bucket width in seconds: a round number giving at most ``MAX_POINTS`` buckets."""
        raw = max(1, self.end - self.start) / MAX_POINTS
        for nice in (60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400):
            if raw <= nice:
                return nice
        return int(math.ceil(raw / 86400) * 86400)

    def params(self) -> dict[str, Any]:
        return {
            "t_from": self.start,
            "t_to": self.end,
            "step": self.step,
            "project": list(self.projects),
            "model": list(self.model),
            "prompt_version": list(self.prompt_version),
            "model_version": list(self.model_version),
        }


def bind(sql: str) -> str:
    """A catalogue panel's SQL with its macros and variables as bound parameters."""
    sql = _TIME_FILTER.sub(
        lambda m: (
            f"{m[1]} >= toDateTime({{t_from:Int64}}) AND {m[1]} <= toDateTime({{t_to:Int64}})"
        ),
        sql,
    )
    sql = _TIME_INTERVAL.sub(
        lambda m: f"toStartOfInterval(toDateTime({m[1]}), toIntervalSecond({{step:UInt32}}))",
        sql,
    )

    def variable(m: re.Match[str]) -> str:
        column, name = m[1], m[2]
        if name not in FILTERS:
            raise ValueError(f"unknown dashboard variable {name!r}")
        if name == "project":  # the scope: always a non-empty list
            return f"{column} IN {{project:Array(String)}}"
        return f"(empty({{{name}:Array(String)}}) OR {column} IN {{{name}:Array(String)}})"

    sql = _IN_VARIABLE.sub(variable, sql)
    if "$" in sql:
        raise ValueError(f"a macro or variable the console does not know: {sql}")
    return " ".join(sql.split())


def plain(value: Any) -> Any:
    """A store value as JSON: times as epoch seconds, ids as text, NaN as null."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, tuple) and len(v) == 2 for v in value)
    ):  # a Map: Arrow hands it over as (key, value) tuples
        return {str(k): plain(v) for k, v in value}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def time_series(result: QueryResult) -> dict[str, Any]:
    """Long or wide rows pivoted into aligned series, the way Grafana's plugin does.

    The first column is the time; string columns name a series; each numeric
    column is a value (with several, the column's name joins the series name).
    """
    columns = result.columns[1:]
    labels = [i for i in range(len(columns)) if any(isinstance(r[i + 1], str) for r in result.rows)]
    values = [i for i in range(len(columns)) if i not in labels]
    xs: list[float] = []
    index: dict[float, int] = {}
    series: dict[str, dict[int, Any]] = {}
    for row in result.rows:
        x = plain(row[0])
        if x not in index:
            index[x] = len(xs)
            xs.append(x)
        name_parts = [str(row[i + 1]) for i in labels]
        for i in values:
            name = " ".join(
                [*name_parts, columns[i]] if len(values) > 1 or not labels else name_parts
            )
            series.setdefault(name or columns[i], {})[index[x]] = plain(row[i + 1])
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    return {
        "x": [xs[i] for i in order],
        "series": [
            {"name": name, "values": [points.get(i) for i in order]}
            for name, points in sorted(series.items())
        ],
    }


def table(result: QueryResult) -> dict[str, Any]:
    return {"columns": result.columns, "rows": [[plain(v) for v in r] for r in result.rows]}


def run_panel(
    store: Store, panel: Panel, filters: Filters, threshold: float | None = None
) -> dict[str, Any]:
    """One panel's data for the browser: its kind, unit and rows (or series)."""
    result = store.query(bind(panel.sql), filters.params())
    out: dict[str, Any] = {"title": panel.title, "kind": panel.kind, "unit": panel.unit}
    if panel.kind == "timeseries":
        out.update(time_series(result))
        out["threshold"] = threshold
    else:
        out.update(table(result))
    return out
