"""Run in a child process by test_cluster_ddl.py: apply the migrations twice on chDB,
single-node in database ``single`` and in their generated cluster form in ``clustered``,
and print both schemas as JSON.

The engine is configured as one node of a one-shard cluster named ``llmloop``
(macros, a ``remote_servers`` entry pointing at itself, and ClickHouse's in-process
test Keeper), so it really creates the ``Replicated*`` tables (macros expanded, Keeper
paths registered) and the ``Distributed`` tables over them. What chDB cannot do,
measured on chDB 4.4 / ClickHouse 26.9 and stated in the output:

* ``ON CLUSTER`` is refused (code 392, "Replicated DDL queries are disabled": no
  distributed-DDL worker in an embedded engine), so each statement is first parsed
  with the engine's own parser (``formatQuery``), which must keep its ``ON CLUSTER``,
  and then run with that one clause taken out;
* a Replicated table on the test Keeper stays read-only (``is_readonly = 1``; an
  INSERT waits forever, ALTER is refused with TABLE_IS_READ_ONLY). So the generated
  CREATE of every replicated table runs as it is, in database ``replicated`` (engine,
  Keeper path and macros checked by the engine), and the whole generated script,
  ALTERs included, runs in ``clustered`` with only the replication taken out again
  (``_unreplicated``): the schema the comparison reads is the generated one.

The process leaves with ``os._exit``: chDB aborts in its exit handlers once
Replicated tables exist (``mutex lock failed``), after all output is written.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

CONFIG = """<clickhouse>
  <macros><shard>01</shard><replica>probe-1</replica></macros>
  <zookeeper><implementation>testkeeper</implementation></zookeeper>
  <tcp_port>9000</tcp_port>
  <remote_servers>
    <{cluster}><shard><replica><host>localhost</host><port>9000</port></replica></shard></{cluster}>
  </remote_servers>
</clickhouse>
"""


def main(workdir: Path, cluster_name: str) -> None:
    import chdb

    from llmloop.store.chdb import _text_params
    from llmloop.store.cluster import Cluster
    from llmloop.store.migrate import _LEDGER, load_migrations, render

    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "config.xml"
    config.write_text(CONFIG.format(cluster=cluster_name))
    conn = chdb.connect(f"{workdir / 'data'}?config-file={config}")

    def run(sql: str, fmt: str = "TSV") -> str:
        return str(conn.query(sql, fmt).bytes().decode())

    cluster = Cluster(cluster_name)
    migrations = load_migrations()
    run("CREATE DATABASE single")
    run("CREATE DATABASE clustered")
    run("CREATE DATABASE replicated")
    run("USE single")
    run(_LEDGER)
    for m in migrations:
        for statement in render(m.up, None):
            run(statement)
    parsed, refused = 0, ""
    statements = [cluster.ledger(_LEDGER)] + [s for m in migrations for s in render(m.up, cluster)]
    run("USE replicated")
    for statement in statements:
        formatted = conn.query(
            "SELECT formatQuery({q:String})", "TSV", params=_text_params({"q": statement})
        )
        if f"ON CLUSTER {cluster_name}" not in formatted.bytes().decode():
            raise SystemExit(f"the parser lost ON CLUSTER in:\n{statement}")
        parsed += 1
        if not refused:
            try:
                run(statement)
            except Exception as exc:  # the measured limit, reported to the test
                refused = str(exc).strip()[:200]
        if "ENGINE = Replicated" in statement:  # as generated, less ON CLUSTER
            run(statement.replace(cluster.on, "", 1))
    # The whole generated script, ALTERs included, with the replication taken out
    # again (read-only replicas refuse ALTER), so the final schema can be compared.
    run("USE clustered")
    for statement in statements:
        run(_unreplicated(statement.replace(cluster.on, "", 1)))
    # Rows through the Distributed table: a redelivered event lands on its shard again
    # and FINAL collapses it.
    row = "('00000000-0000-0000-0000-000000000001', 'p', '2026-01-01 00:00:00', 'm')"
    for _ in range(2):
        run(
            "INSERT INTO completions (event_id, project_id, ts, model) "
            f"SETTINGS distributed_foreground_insert = 1 VALUES {row}"
        )
    distributed_final = int(run("SELECT count() FROM completions FINAL").strip())
    distributed_raw = int(run("SELECT count() FROM completions").strip())

    def rows(sql: str) -> list[dict[str, object]]:
        return [json.loads(line) for line in run(sql, "JSONEachRow").splitlines() if line]

    out = {
        "parsed": parsed,
        "on_cluster_refused": refused,
        "columns": rows(
            "SELECT database, table, name, position, type, default_kind, default_expression, "
            "compression_codec, comment FROM system.columns "
            "WHERE database IN ('single', 'clustered', 'replicated') "
            "ORDER BY database, table, position"
        ),
        "tables": rows(
            "SELECT database, name, engine, engine_full, sorting_key, primary_key, "
            "partition_key, as_select FROM system.tables "
            "WHERE database IN ('single', 'clustered', 'replicated') ORDER BY database, name"
        ),
        "indices": rows(
            "SELECT database, table, name, type_full, expr, granularity "
            "FROM system.data_skipping_indices "
            "WHERE database IN ('single', 'clustered', 'replicated') ORDER BY database, table, name"
        ),
        "replicas": rows(
            "SELECT table, zookeeper_path, replica_name, is_readonly FROM system.replicas "
            "WHERE database = 'replicated' ORDER BY table"
        ),
        "distributed_final": distributed_final,
        "distributed_raw": distributed_raw,
        "version": run("SELECT version()").strip(),
    }
    sys.stdout.write(json.dumps(out))
    sys.stdout.flush()
    os._exit(0)


def _unreplicated(statement: str) -> str:
    """``ReplicatedX('path', 'replica'[, args])`` -> ``X([args])``: the exact inverse of
    the renderer's engine rewrite, for the read-only limit above."""
    import re

    return re.sub(
        r"ENGINE = Replicated(\w+)\('[^']*', '[^']*'(?:, )?(.*?)\)\s*$",
        lambda m: f"ENGINE = {m[1]}({m[2]})",
        statement,
        flags=re.M,
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
