"""Local state files: a schema version in the file, migrations in order, newer files refused."""

from __future__ import annotations

import sqlite3

import pytest

from llmloop.localdb import LocalStateError, open_db, schema_version

V1 = "CREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY)"
V2 = "ALTER TABLE items ADD COLUMN note TEXT NOT NULL DEFAULT ''"


def test_a_new_file_gets_every_migration_and_its_version(tmp_path):
    conn = open_db(tmp_path / "a" / "state.db", [V1, V2], what="the test state")
    conn.execute("INSERT INTO items (id, note) VALUES ('x', 'y')")
    assert schema_version(conn) == 2
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_an_older_file_gets_only_what_it_lacks_and_keeps_its_rows(tmp_path):
    path = tmp_path / "state.db"
    conn = open_db(path, [V1], what="the test state")
    conn.execute("INSERT INTO items VALUES ('kept')")
    conn.close()
    conn = open_db(path, [V1, V2], what="the test state")
    assert conn.execute("SELECT id, note FROM items").fetchall() == [("kept", "")]
    assert schema_version(conn) == 2
    conn.close()
    assert schema_version(open_db(path, [V1, V2], what="the test state")) == 2  # idempotent


def test_a_file_from_before_versions_is_taken_as_version_zero(tmp_path):
    # Files written before the helper have their tables but user_version 0: the first
    # script (IF NOT EXISTS) runs over them harmlessly.
    path = tmp_path / "state.db"
    old = sqlite3.connect(path)
    old.execute(V1)
    old.execute("INSERT INTO items VALUES ('old')")
    old.commit()
    old.close()
    conn = open_db(path, [V1, V2], what="the test state")
    assert conn.execute("SELECT id FROM items").fetchall() == [("old",)]


def test_a_file_from_a_newer_release_is_refused_untouched(tmp_path):
    path = tmp_path / "state.db"
    open_db(path, [V1, V2], what="the alerting journal").close()
    with pytest.raises(LocalStateError, match=r"alerting journal .* version 2, newer .* \(1\)"):
        open_db(path, [V1], what="the alerting journal")
    assert schema_version(open_db(path, [V1, V2], what="x")) == 2


def test_a_failing_migration_leaves_the_file_at_the_version_before(tmp_path):
    path = tmp_path / "state.db"
    open_db(path, [V1], what="the test state").close()
    with pytest.raises(LocalStateError, match="schema version 2 failed"):
        open_db(path, [V1, "ALTER TABLE nowhere ADD COLUMN x TEXT"], what="the test state")
    conn = open_db(path, [V1], what="the test state")
    assert schema_version(conn) == 1


def test_two_owners_keep_their_own_schemas_in_one_file(tmp_path):
    # Retraining's join and job ledger share a state file.
    path = tmp_path / "state.db"
    open_db(path, [V1, V2], what="the join", owner="join").close()
    ledger = open_db(path, ["CREATE TABLE IF NOT EXISTS jobs (id TEXT)"], what="x", owner="ledger")
    ledger.execute("INSERT INTO jobs VALUES ('j')")
    assert schema_version(ledger, "join") == 2 and schema_version(ledger, "ledger") == 1
