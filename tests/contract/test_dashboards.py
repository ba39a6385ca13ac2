"""Every Grafana panel's SQL, expanded as the ClickHouse plugin does, runs on chDB and finds rows.

The store is migrated and filled by the demo generator (`llmloop demo`), so a
panel that fails or shows nothing on demo data fails here.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from llmloop.store import open_store
from llmloop.store.migrate import migrate
from llmloop_app.backfill import backfill

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_FILES = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
INTERVAL_S = 300


def load_build():
    spec = importlib.util.spec_from_file_location("grafana_build", ROOT / "grafana" / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


def expand_macros(sql: str, start: datetime, end: datetime) -> str:
    """The plugin's macros (pkg/macros/macros.go in grafana/clickhouse-datasource)."""
    frm, to = int(start.timestamp()), int(end.timestamp())
    sql = re.sub(
        r"\$__timeFilter\(([^)]+)\)",
        lambda m: f"{m[1]} >= toDateTime({frm}) AND {m[1]} <= toDateTime({to})",
        sql,
    )
    sql = re.sub(
        r"\$__timeInterval\(([^)]+)\)",
        lambda m: f"toStartOfInterval(toDateTime({m[1]}), INTERVAL {INTERVAL_S} second)",
        sql,
    )
    sql = sql.replace("$__fromTime", f"toDateTime({frm})").replace("$__toTime", f"toDateTime({to})")
    return sql.replace("$__interval_s", str(INTERVAL_S))


def quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def expand_variables(sql: str, values: dict[str, list[str]]) -> str:
    """Grafana's template variables with "All" selected, in the forms the dashboards use."""
    for name, options in values.items():
        listed = ",".join(quote(v) for v in options)
        sql = sql.replace(f"${{{name}:singlequote}}", listed).replace(f"${{{name}}}", listed)
    return sql


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory):
    store = open_store(f"chdb:///{tmp_path_factory.mktemp('grafana')}/chdb")
    migrate(store)
    # Every Arrow table the services insert, by ClickHouse table (test_every_write_...).
    store.written = {}
    insert = store.insert

    def recording(table, data, **options):
        store.written.setdefault(table, data.schema)
        return insert(table, data, **options)

    store.insert = recording
    backfill(store, hours=1.5, events_per_minute=40)  # every service runs on it: ~30 s
    yield store
    store.close()


# Arrow type -> the ClickHouse column types it may be written into (Nullable and
# LowCardinality aside); anything else is a migration and a writer that disagree.
_COMPATIBLE = {
    "string": {"String", "UUID", "FixedString(16)"},
    "large_string": {"String"},
    "timestamp[ms, tz=UTC]": {"DateTime64(3, 'UTC')"},
    "double": {"Float64"},
    "float": {"Float32"},
    "bool": {"Bool"},
    "uint8": {"UInt8"},
    "uint16": {"UInt16"},
    "uint32": {"UInt32"},
    "uint64": {"UInt64"},
    "int8": {"Int8"},
    "int32": {"Int32"},
    "int64": {"Int64"},
}


def _clickhouse_type(arrow: object) -> set[str]:
    import pyarrow as pa

    if pa.types.is_map(arrow):
        return {f"Map({k}, {v})" for k in _clickhouse_type(arrow.key_type)
                for v in _clickhouse_type(arrow.item_type)}  # fmt: skip
    if pa.types.is_list(arrow):
        return {f"Array({t})" for t in _clickhouse_type(arrow.value_type)}
    return _COMPATIBLE[str(arrow)]


def _bare(column_type: str) -> str:
    # Drop every Nullable(...) and LowCardinality(...) wrapper, keeping what it wraps.
    while found := re.search(r"(?:Nullable|LowCardinality)\(", column_type):
        depth, end = 1, found.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(column_type[end], 0)
            end += 1
        column_type = (
            column_type[: found.start()] + column_type[found.end() : end - 1] + column_type[end:]
        )
    return column_type


# Columns that no writer fills and that take their type's default: each is here on
# purpose, with the reason.
UNWRITTEN = {
    # Vectors moved to completion_embeddings (issue 18, 0017); rows written before keep them.
    "completion_enrichments.prompt_embedding",
    "completion_enrichments.completion_embedding",
}


def test_every_write_matches_its_table_as_migrated(demo_store):
    # The one writer builds Arrow tables by hand next to the migrations that define the
    # tables: each column it writes must exist with a type it converts to, and each
    # column it leaves out must have a default, or rows land silently wrong.
    written, missing = demo_store.written, set()
    assert {"completions", "feedback", "completion_enrichments", "completion_embeddings",
            "metrics", "alerts", "notification_attempts"} <= set(written)  # fmt: skip
    for table, schema in written.items():
        columns = {
            name: (kind, default)
            for name, kind, default in demo_store.query(
                "SELECT name, type, default_kind FROM system.columns "
                "WHERE database = currentDatabase() AND table = {t:String}",
                {"t": table},
            ).rows
        }
        assert columns, f"{table} is written but no migration creates it"
        for field in schema:
            assert field.name in columns, f"{table}.{field.name} is written, not migrated"
            kind = _bare(columns[field.name][0])
            assert kind in _clickhouse_type(field.type), (
                f"{table}.{field.name}: Arrow {field.type} into ClickHouse {columns[field.name][0]}"
            )
        unwritten = {
            n for n, (_, default) in columns.items() if n not in schema.names and not default
        }
        missing.update(f"{table}.{n}" for n in unwritten)
    assert missing == UNWRITTEN, "columns that no writer fills and that have no DEFAULT"


def test_committed_dashboards_are_what_build_py_makes():
    build = load_build()
    files = build.render_all()
    assert sorted(files) == [p.name for p in DASHBOARD_FILES]
    for path in DASHBOARD_FILES:
        assert path.read_text() == files[path.name], f"run python grafana/build.py ({path.name})"


def panels():
    for path in DASHBOARD_FILES:
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                yield pytest.param(dashboard, target["rawSql"], id=f"{path.stem}: {panel['title']}")


@pytest.mark.parametrize(("dashboard", "sql"), list(panels()))
def test_panel_query_runs_on_demo_data_and_finds_rows(demo_store, dashboard, sql):
    end = datetime.now(UTC) + timedelta(minutes=1)
    start = end - timedelta(hours=6, minutes=2)
    values = {}
    for var in dashboard["templating"]["list"]:
        query = expand_macros(var["query"], start, end)
        values[var["name"]] = [str(row[0]) for row in demo_store.query(query).rows]
        assert values[var["name"]], f"variable {var['name']} has no values"
    expanded = expand_variables(expand_macros(sql, start, end), values)
    assert "$" not in expanded, f"unexpanded macro or variable in: {expanded}"
    result = demo_store.query(expanded)
    assert result.rows, f"no rows for: {expanded}"
    # A panel of nothing but zeros and nulls shows nothing either.
    assert any(v not in (None, 0, 0.0, "") for row in result.rows for v in row[1:] or row)


def test_every_dashboard_filters_by_the_four_template_variables():
    for path in DASHBOARD_FILES:
        names = {v["name"] for v in json.loads(path.read_text())["templating"]["list"]}
        assert names == {"project", "model", "prompt_version", "model_version"}, path.name


# --- one catalogue, two renderers (issue 15) ----------------------------------------------


def test_grafana_json_and_the_console_come_from_one_panel_catalogue(tmp_path):
    from fastapi.testclient import TestClient

    from llmloop.contracts.panels import DASHBOARDS
    from llmloop_console.app import create_app
    from llmloop_console.panels import bind
    from llmloop_console.tokens import ConsoleTokens

    class NoStore:
        url = "none://"

    tokens = ConsoleTokens(tmp_path / "console.db")
    token, _ = tokens.create(["*"])
    client = TestClient(create_app(NoStore(), tokens))  # type: ignore[arg-type]
    client.get(f"/console/signin?token={token}")
    committed = {
        json.loads(p.read_text())["uid"]: json.loads(p.read_text()) for p in DASHBOARD_FILES
    }
    assert sorted(committed) == sorted(d.uid for d in DASHBOARDS)
    for d in DASHBOARDS:
        grafana = [
            (p["title"], p["type"], p["targets"][0]["rawSql"]) for p in committed[d.uid]["panels"]
        ]
        assert grafana == [(p.title, p.kind, " ".join(p.sql.split())) for p in d.panels]
        console = client.get(f"/console/api/d/{d.uid}").json()["panels"]
        assert [(p["title"], p["kind"], p["sql"]) for p in console] == [
            (p.title, p.kind, bind(p.sql)) for p in d.panels
        ]


def console_panels():
    from llmloop.contracts.panels import DASHBOARDS

    for d in DASHBOARDS:
        for i, p in enumerate(d.panels):
            yield pytest.param(d.uid, i, id=f"{d.uid}: {p.title}")


@pytest.fixture(scope="module")
def console_client(demo_store, tmp_path_factory):
    from fastapi.testclient import TestClient

    from llmloop_console.app import create_app
    from llmloop_console.tokens import ConsoleTokens

    tokens = ConsoleTokens(tmp_path_factory.mktemp("console") / "console.db")
    token, _ = tokens.create(["demo"])
    thresholds = {"embedding-drift": 1.0, "bias-negative-feedback": 0.1}
    client = TestClient(create_app(demo_store, tokens, thresholds=thresholds))
    client.get(f"/console/signin?token={token}")
    return client


@pytest.mark.parametrize(("uid", "index"), list(console_panels()))
def test_console_panel_shows_the_demo_data(console_client, uid, index):
    data = console_client.get(f"/console/api/d/{uid}/{index}?range=6h").json()
    if data["kind"] == "timeseries":
        values = [v for s in data["series"] for v in s["values"] if v not in (None, 0, 0.0)]
        assert data["x"] and values, data["title"]
    else:
        assert data["rows"], data["title"]
