"""The store adapters: bound parameters, Arrow inserts, UTC times, clear errors; chDB's one
owner per data dir.

The adapter tests run on both adapters: ``chdb`` (embedded) and ``clickhouse``
(clickhouse-connect over HTTP, against ``LLMLOOP_CLICKHOUSE_URL`` when it names a server,
otherwise against the chDB HTTP harness; see ``clickhouse_server_url`` in conftest)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pyarrow as pa
import pytest

from llmloop.store import StoreError, StoreLocked, open_store

HOSTILE = [
    "it's",
    'a "quote"',
    "back\\slash",
    "tab\there",
    "new\nline",
    "'; DROP TABLE t; --",
    "ünï😀",
]


@pytest.fixture(params=["chdb", "clickhouse"])
def any_store_url(request, tmp_path):
    if request.param == "chdb":
        return f"chdb:///{tmp_path}/chdb"
    return request.getfixturevalue("clickhouse_url")


@pytest.fixture
def store(any_store_url):
    store = open_store(any_store_url)
    store.command(
        "CREATE TABLE t (id UInt32, label String, labels Map(String, String), "
        "tags Array(String), ts DateTime64(3, 'UTC'), score Nullable(Float64)) "
        "ENGINE = MergeTree ORDER BY id"
    )
    yield store
    store.close()


def test_values_travel_as_parameters_and_come_back_unchanged(store):
    for value in HOSTILE:
        assert store.query("SELECT {v:String}", {"v": value}).scalar() == value
    got = store.query("SELECT {l:Array(String)}", {"l": HOSTILE}).scalar()
    assert got == HOSTILE
    got = store.query("SELECT {m:Map(String, String)}", {"m": {"k'": "v\\"}}).scalar()
    assert dict(got) == {"k'": "v\\"}
    assert store.query("SELECT count() FROM t").scalar() == 0  # the DROP stayed a string


def test_long_parameter_lists_bind_too(store):
    # clickhouse-connect sends long parameters as a multipart form body: the HTTP harness
    # must read them there, as ClickHouse does (a lookup of 1,000 ids once failed).
    ids = [uuid.uuid4() for _ in range(1000)]
    got = store.query("SELECT length({ids:Array(UUID)}), has({ids:Array(UUID)}, {one:UUID})",
                      {"ids": ids, "one": ids[-1]}).rows  # fmt: skip
    assert got == [(1000, 1)]


def test_one_store_serves_several_threads_at_once(store):
    # The processor's sink and statistics query one store from two threads; a
    # clickhouse-connect session refused the second query while the first ran.
    errors: list[str] = []

    def work() -> None:
        try:
            for _ in range(10):
                assert store.query("SELECT sleep(0.01), 1").rows == [(0, 1)]
        except Exception as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_arrow_insert_and_typed_query(store):
    now = datetime(2026, 11, 20, 12, 0, 0, 123000, tzinfo=UTC)
    table = pa.table(
        {
            "id": pa.array([1, 2], pa.uint32()),
            "label": HOSTILE[:2],
            "labels": pa.array([[("locale", "de")], []], pa.map_(pa.string(), pa.string())),
            "tags": [["a"], []],
            "ts": pa.array([now, now], pa.timestamp("ms", tz="UTC")),
            "score": pa.array([0.5, None], pa.float64()),
        }
    )
    assert store.insert("t", table) == 2
    rows = store.query(
        "SELECT id, label, labels, tags, ts, score FROM t "
        "WHERE label IN {l:Array(String)} ORDER BY id",
        {"l": HOSTILE[:2]},
    ).dicts()
    assert [r["id"] for r in rows] == [1, 2]
    assert rows[0]["label"] == "it's" and dict(rows[0]["labels"]) == {"locale": "de"}
    assert rows[0]["ts"] == now and rows[1]["score"] is None
    assert store.query_raw("SELECT id FROM t ORDER BY id FORMAT TSV") == b"1\n2\n"
    assert store.query_raw("SELECT id FROM t ORDER BY id", "JSONEachRow").count(b'"id"') == 2


def test_an_insert_of_unique_keys_skips_the_fold_on_insert(store):
    # The writers drop a batch's duplicates before inserting and say so (unique_keys):
    # the engine then skips folding the block as it inserts. Shown on two rows of one key,
    # which only an insert that folds makes one (the merges fold them later either way).
    store.command("CREATE TABLE r (id UInt32, v String) ENGINE = ReplacingMergeTree ORDER BY id")
    two = pa.table({"id": pa.array([1, 1], pa.uint32()), "v": ["a", "b"]})
    store.insert("r", two)
    assert store.query("SELECT count() FROM r").scalar() == 1
    store.command("TRUNCATE TABLE r")
    store.insert("r", two, unique_keys=True)
    assert store.query("SELECT count() FROM r").scalar() == 2


def test_bad_sql_is_a_store_error_naming_the_problem(store):
    with pytest.raises(StoreError, match=r"UNKNOWN_TABLE|Unknown table"):
        store.query("SELECT * FROM nope")
    with pytest.raises(StoreError, match="insert into nope"):
        store.insert("nope", pa.table({"x": [1]}))


def test_times_are_utc_whatever_the_zone_they_come_in(store):
    instant = datetime(2026, 3, 29, 1, 30, 0, 250000, tzinfo=UTC)  # a DST night in Europe
    elsewhere = instant.astimezone(timezone(timedelta(hours=5, minutes=30)))
    table = pa.table(
        {
            "id": pa.array([1], pa.uint32()),
            "label": ["x"],
            "labels": pa.array([[]], pa.map_(pa.string(), pa.string())),
            "tags": [[]],
            "ts": pa.array([instant], pa.timestamp("ms", tz="UTC")),
            "score": pa.array([None], pa.float64()),
        }
    )
    store.insert("t", table)
    for given in (instant, elsewhere, instant.replace(tzinfo=None)):  # naive means UTC
        got = store.query(
            "SELECT ts, toString(ts) FROM t WHERE ts = {at:DateTime64(3, 'UTC')}", {"at": given}
        ).rows
        assert got == [(instant, "2026-03-29 01:30:00.250")], given
    assert store.query("SELECT {at:DateTime64(3, 'UTC')}", {"at": elsewhere}).scalar() == instant


def test_the_clickhouse_adapter_does_not_depend_on_the_server_zone(tmp_path):
    """The harness runs its engine in New York time; the same instants go in and out."""
    from llmloop.testing.clickhouse_http import ChdbHttpServer

    with ChdbHttpServer(tmp_path / "ny", timezone="America/New_York") as server:
        store = open_store(server.url)
        try:
            assert store.query("SELECT timezone()").scalar() == "America/New_York"
            store.command(
                "CREATE TABLE t (ts DateTime64(3, 'UTC'), at DateTime64(3, 'UTC') "
                "DEFAULT now64(3)) ENGINE = MergeTree ORDER BY ts"
            )
            instant = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
            store.insert("t", pa.table({"ts": pa.array([instant], pa.timestamp("ms", tz="UTC"))}))
            row = store.query(
                "SELECT ts, toString(ts), at FROM t WHERE ts >= {lo:DateTime64(3, 'UTC')}",
                {"lo": instant.astimezone(timezone(timedelta(hours=-4)))},
            ).rows
            assert row[0][:2] == (instant, "2026-07-01 12:00:00.000")
            assert abs(row[0][2] - datetime.now(UTC)) < timedelta(minutes=5)  # an instant
        finally:
            store.close()


def test_a_server_older_than_supported_is_refused_by_name():
    from llmloop.store.clickhouse import MIN_SERVER, check_server_version

    check_server_version(".".join(map(str, MIN_SERVER)) + ".1.1")
    check_server_version("26.9.2.1")
    with pytest.raises(StoreError, match=r"is 23\.8\.1; llmloop needs 24\.8\+"):
        check_server_version("23.8.1", "clickhouse://h:8123")


def test_migrations_apply_rerun_and_roll_back_through_clickhouse_connect(clickhouse_url):
    from llmloop.store.migrate import load_migrations, migrate

    store = open_store(clickhouse_url)
    try:
        first = migrate(store)
        assert len(first.applied) == len(load_migrations())
        assert not migrate(store).changed
        assert migrate(store, target=0).rolled_back == list(reversed(first.applied))
        names = store.query("SELECT name FROM system.tables WHERE database = currentDatabase()")
        assert [r[0] for r in names.rows] == ["llmloop_migrations"]
        assert migrate(store).applied == first.applied
    finally:
        store.close()


def test_several_processes_write_one_store_over_http(clickhouse_url):
    """What the distributed runtime does: writers in separate processes, one store."""
    store = open_store(clickhouse_url)
    store.command("CREATE TABLE w (pid UInt32, n UInt32) ENGINE = MergeTree ORDER BY (pid, n)")
    script = textwrap.dedent(f"""
        import os, pyarrow as pa
        from llmloop.store import open_store
        s = open_store({clickhouse_url!r})
        for batch in range(5):
            n = pa.array(range(batch * 100, batch * 100 + 100), pa.uint32())
            s.insert("w", pa.table({{"pid": pa.array([os.getpid()] * 100, pa.uint32()), "n": n}}))
        s.close()
    """)
    writers = [subprocess.Popen([sys.executable, "-c", script]) for _ in range(3)]
    try:
        assert [w.wait(120) for w in writers] == [0, 0, 0]
        rows = store.query("SELECT pid, count(), uniqExact(n) FROM w GROUP BY pid").rows
        assert sorted(r[1:] for r in rows) == [(500, 500)] * 3
    finally:
        store.close()


def test_a_second_path_in_one_process_is_refused_clearly(tmp_path):
    store = open_store(f"chdb:///{tmp_path}/chdb")
    try:
        with pytest.raises(StoreLocked, match="already has another chDB store open"):
            open_store(f"chdb:///{tmp_path}/other")
    finally:
        store.close()


def test_a_second_process_is_refused_with_the_path_named(tmp_path):
    path = tmp_path / "owned"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import sys
            from llmloop.store import open_store
            s = open_store("chdb:///{path}")
            print("open", flush=True)
            sys.stdin.read()
        """),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(StoreLocked, match=f"{path}: another process has it open"):
            open_store(f"chdb:///{path}")
    finally:
        holder.kill()
        holder.wait()
    open_store(f"chdb:///{path}").close()  # the lock dies with its process


@pytest.mark.parametrize("url", ["chdb://", "chdb:///", "mysql://x", "nothing"])
def test_bad_store_urls_say_what_is_expected(url):
    with pytest.raises(ValueError, match="chdb:///"):
        open_store(url)
