"""The cluster DDL: generated from the single-node migrations, parsed and run by the real
engine (chDB, in a child process: see cluster_ddl_probe.py for what it can and cannot
run), and the same schema as single-node, column by column."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llmloop.store.base import QueryResult
from llmloop.store.cluster import Cluster, ClusterDDLError
from llmloop.store.migrate import load_migrations, migrate

CLUSTER = "llmloop_ci"
PROBE = Path(__file__).with_name("cluster_ddl_probe.py")
TABLE_KEYS = ("sorting_key", "primary_key", "partition_key")


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("cluster")
    done = subprocess.run(
        [sys.executable, str(PROBE), str(work), CLUSTER],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def _by(rows: list[dict], db: str, key: str = "table") -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in rows:
        if row["database"] == db:
            out.setdefault(row[key], []).append(row)
    return out


def _columns(rows: list[dict]) -> list[tuple]:
    return [
        (
            r["name"],
            r["position"],
            r["type"],
            r["default_kind"],
            r["default_expression"],
            r["compression_codec"],
            r["comment"],
        )
        for r in rows
    ]


def test_every_statement_parses_with_on_cluster_and_the_engine_refuses_only_that(probe):
    assert probe["parsed"] > len(load_migrations())
    # The measured limit of the embedded engine; if a chDB release lifts it, this
    # fails and the probe should run ON CLUSTER for real.
    assert "392" in probe["on_cluster_refused"], probe["on_cluster_refused"]


def test_cluster_tables_have_the_single_node_columns_one_by_one(probe):
    single = _by(probe["columns"], "single")
    clustered = _by(probe["columns"], "clustered")
    tables = set(single) - {"notification_dead_letters"}
    assert tables >= {"completions", "feedback", "metrics", "completion_enrichments"}
    for table in sorted(tables):
        want = _columns(single[table])
        if table != "llmloop_migrations":
            assert _columns(clustered[table + "_local"]) == want, table
        assert _columns(clustered[table]) == want, table  # what writer and readers see
    view = "notification_dead_letters"
    assert _columns(clustered[view]) == _columns(single[view])


def test_cluster_tables_keep_keys_partitions_ttl_and_indices(probe):
    single = {t["name"]: t for t in probe["tables"] if t["database"] == "single"}
    clustered = {t["name"]: t for t in probe["tables"] if t["database"] == "clustered"}
    replicated = {t["name"]: t for t in probe["tables"] if t["database"] == "replicated"}
    for name, table in single.items():
        if table["engine"] == "View":
            assert clustered[name]["engine"] == "View"
            continue
        local = name if name == "llmloop_migrations" else name + "_local"
        for key in TABLE_KEYS:
            assert clustered[local][key] == table[key], (name, key)
            assert replicated[local][key] == table[key], (name, key)
        assert replicated[local]["engine"] == "Replicated" + table["engine"]
        ttl = table["engine_full"].partition(" TTL ")[2].partition(" SETTINGS")[0]
        assert ttl in clustered[local]["engine_full"], name
        if local != name:
            dist = clustered[name]
            assert dist["engine"] == "Distributed"
            assert f"'{CLUSTER}'" in dist["engine_full"] and f"'{local}'" in dist["engine_full"]
            assert f"cityHash64({table['sorting_key']})" in dist["engine_full"]
    indices = lambda db: {  # noqa: E731
        (r["table"].removesuffix("_local"), r["name"], r["type_full"], r["expr"])
        for r in probe["indices"]
        if r["database"] == db
    }
    assert indices("clustered") == indices("single") and indices("single")


def test_replicated_tables_are_created_with_the_standard_macros(probe):
    replicas = {r["table"]: r for r in probe["replicas"]}
    assert replicas["completions_local"]["zookeeper_path"] == (
        "/clickhouse/tables/01/replicated/completions_local"  # {shard}/{database}/{table}
    )
    assert replicas["completions_local"]["replica_name"] == "probe-1"  # {replica}
    # The ledger: one replica set across all shards, so every node reads one record.
    assert replicas["llmloop_migrations"]["zookeeper_path"].startswith("/clickhouse/tables/all/")


def test_a_redelivered_event_collapses_through_the_distributed_table(probe):
    assert probe["distributed_raw"] == 2 and probe["distributed_final"] == 1


class RecordingStore:
    url = "recording://"

    def __init__(self) -> None:
        self.statements: list[str] = []

    def command(self, sql, params=None):
        self.statements.append(sql)

    def query(self, sql, params=None):
        return QueryResult(["version", "checksum", "applied"], [])


def test_migrate_with_a_cluster_runs_only_cluster_statements():
    store = RecordingStore()
    report = migrate(store, cluster=CLUSTER)
    assert report.applied == [m.label for m in load_migrations()]
    ddl = [s for s in store.statements if not s.startswith("INSERT INTO llmloop_migrations")]
    assert ddl and all(f"ON CLUSTER '{CLUSTER}'" in s for s in ddl)
    assert not any("ENGINE = ReplacingMergeTree" in s for s in ddl)
    plain = RecordingStore()
    migrate(plain)  # no cluster: the single-node files as they are
    assert not any("ON CLUSTER" in s for s in plain.statements)


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE t (x UInt8) ENGINE = Memory",
        "RENAME TABLE a TO b",
        "CREATE TABLE IF NOT EXISTS t (x UInt8) ENGINE = Log",
    ],
)
def test_a_statement_shape_the_renderer_does_not_know_is_an_error(statement):
    with pytest.raises(ClusterDDLError):
        Cluster(CLUSTER).render(statement)
