"""The chDB store adapter: bound parameters, Arrow inserts, clear errors, one owner."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime

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


@pytest.fixture
def store(tmp_path):
    store = open_store(f"chdb:///{tmp_path}/chdb")
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


def test_bad_sql_is_a_store_error_naming_the_problem(store):
    with pytest.raises(StoreError, match=r"UNKNOWN_TABLE|Unknown table"):
        store.query("SELECT * FROM nope")
    with pytest.raises(StoreError, match="insert into nope"):
        store.insert("nope", pa.table({"x": [1]}))


def test_a_second_path_in_one_process_is_refused_clearly(store, tmp_path):
    with pytest.raises(StoreLocked, match="already has another chDB store open"):
        open_store(f"chdb:///{tmp_path}/other")


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
