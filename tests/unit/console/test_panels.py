"""Catalogue SQL on the store port: macros become bound parameters; series pivot like Grafana."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from llmloop.contracts.panels import DASHBOARDS
from llmloop.store import QueryResult
from llmloop_console.panels import Filters, bind, plain, time_series


def test_every_catalogue_panel_binds_with_the_project_scope_always_applied():
    for d in DASHBOARDS:
        for panel in d.panels:
            sql = bind(panel.sql)
            assert "$" not in sql
            assert "{project:Array(String)}" in sql, panel.title  # the scope filter
            assert "empty({project" not in sql  # never "all projects"


def test_macros_become_parameters():
    sql = bind(
        "SELECT $__timeInterval(ts) AS time FROM completions WHERE $__timeFilter(ts) "
        "AND project_id IN (${project:singlequote}) AND labels['model'] IN (${model:singlequote})"
    )
    assert "toIntervalSecond({step:UInt32})" in sql
    assert "ts >= toDateTime({t_from:Int64}) AND ts <= toDateTime({t_to:Int64})" in sql
    assert "project_id IN {project:Array(String)}" in sql
    assert "(empty({model:Array(String)}) OR labels['model'] IN {model:Array(String)})" in sql


def test_an_unknown_variable_is_refused():
    with pytest.raises(ValueError, match="unknown dashboard variable"):
        bind("SELECT 1 WHERE x IN (${tenant:singlequote})")


def test_step_gives_at_most_240_round_buckets():
    assert Filters(0, 6 * 3600, ("p",)).step == 120
    assert Filters(0, 3600, ("p",)).step == 60
    assert Filters(0, 30 * 86400, ("p",)).step == 21600


def t(minute: int) -> datetime:
    return datetime(2026, 1, 1, 0, minute, tzinfo=UTC)


def test_long_rows_pivot_into_one_series_per_label():
    result = QueryResult(
        ["time", "model", "requests"],
        [(t(5), "b", 3), (t(0), "a", 1), (t(5), "a", 2)],
    )
    out = time_series(result)
    assert out["x"] == [t(0).timestamp(), t(5).timestamp()]
    assert out["series"] == [
        {"name": "a", "values": [1, 2]},
        {"name": "b", "values": [None, 3]},
    ]


def test_wide_rows_make_a_series_per_value_column():
    result = QueryResult(["time", "p50", "p95"], [(t(0), 1.0, 2.0), (t(1), 1.5, float("nan"))])
    out = time_series(result)
    assert out["series"] == [
        {"name": "p50", "values": [1.0, 1.5]},
        {"name": "p95", "values": [2.0, None]},
    ]


def test_labels_and_several_values_name_series_by_both():
    result = QueryResult(["time", "model", "tox", "ref"], [(t(0), "a", 0.1, 0.2)])
    names = [s["name"] for s in time_series(result)["series"]]
    assert names == ["a ref", "a tox"]


def test_maps_become_objects_and_times_epoch_seconds():
    assert plain([("model", "a"), ("locale", "de-DE")]) == {"model": "a", "locale": "de-DE"}
    assert plain(t(0)) == t(0).timestamp()
    assert plain([1, 2]) == [1, 2]
