"""Migrations: named and paired, apply on chDB, re-run as a no-op, roll back."""

from __future__ import annotations

import re

from llmloop.store import open_store
from llmloop.store.migrate import load_migrations, migrate, migrations_dir
from llmloop_app.cli import main

TABLES = {"completions", "feedback", "metrics", "alerts", "retrain_jobs", "model_versions"}


def tables(store) -> set[str]:
    rows = store.query("SELECT name FROM system.tables WHERE database = currentDatabase()").rows
    return {r[0] for r in rows} - {"llmloop_migrations"}


def test_migration_files_are_numbered_and_paired():
    files = {p.name for p in migrations_dir().glob("*.sql")}
    migrations = load_migrations()
    versions = [m.version for m in migrations]
    assert versions == sorted(set(versions)) and versions[0] == 1  # gaps are harmless
    for m in migrations:
        assert re.fullmatch(r"[a-z]+_[a-z_]+", m.name), m.name
        assert {f"{m.label}.up.sql", f"{m.label}.down.sql"} <= files


def test_apply_rerun_and_roll_back_on_chdb(tmp_path):
    store = open_store(f"chdb:///{tmp_path}/chdb")
    try:
        first = migrate(store)
        assert len(first.applied) == len(load_migrations())
        everything = tables(store)
        assert everything >= TABLES
        again = migrate(store)
        assert not again.changed and again.current == first.current
        down = migrate(store, target=0)
        assert down.rolled_back == list(reversed(first.applied))
        assert tables(store) == set()
        assert migrate(store).applied == first.applied
        assert tables(store) == everything
    finally:
        store.close()


def test_cli_migrate_twice_changes_nothing_the_second_time(tmp_path, capsys):
    assert main(["migrate", "--data-dir", str(tmp_path)]) == 0
    first = capsys.readouterr().out
    assert "applied      0001_create_completions" in first
    assert main(["migrate", "--data-dir", str(tmp_path)]) == 0
    second = capsys.readouterr().out
    assert "nothing to do" in second and "applied" not in second
