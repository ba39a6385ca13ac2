"""Numbered migrations from ``schemas/clickhouse`` (``NNNN_verb_object.up.sql`` / ``.down.sql``).

Applied in order and recorded in ``llmloop_migrations``; applying twice is a
no-op. The record is append-only (a rollback is a row with ``applied = 0``),
so it needs no DELETE and reads the same on chDB and on a server.

With a cluster (``cluster=``, from ``LLMLOOP_CLICKHOUSE_CLUSTER``) each statement runs
in its generated cluster form (``llmloop.store.cluster``): ``ON CLUSTER``, replicated
engines, Distributed tables. The checksum is the single-node file's either way.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from llmloop.store.base import Store, StoreError, split_statements
from llmloop.store.cluster import Cluster

log = logging.getLogger(__name__)

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.up\.sql$")

_LEDGER = """
CREATE TABLE IF NOT EXISTS llmloop_migrations
(
    version UInt32,
    name String,
    checksum String,
    applied Bool,
    at DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree(at)
ORDER BY version
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    up: str
    down: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.up.encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


@dataclass
class MigrationReport:
    applied: list[str] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    current: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.applied or self.rolled_back)


def migrations_dir() -> Path:
    return Path(str(resources.files("llmloop_schemas") / "clickhouse"))


def load_migrations(directory: Path | None = None) -> list[Migration]:
    directory = directory or migrations_dir()
    found: list[Migration] = []
    for up in sorted(directory.glob("*.up.sql")):
        match = _FILE.match(up.name)
        if not match:
            raise StoreError(f"migration file {up.name} is not named NNNN_verb_object.up.sql")
        down = up.with_name(up.name.replace(".up.sql", ".down.sql"))
        if not down.exists():
            raise StoreError(f"migration {up.name} has no {down.name}")
        found.append(Migration(int(match[1]), match[2], up.read_text(), down.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise StoreError(f"two migrations share a number in {directory}")
    return found


def applied_versions(store: Store, cluster: Cluster | None = None) -> dict[int, str]:
    """Version -> checksum of every migration currently applied."""
    store.command(cluster.ledger(_LEDGER) if cluster else _LEDGER)
    result = store.query(
        "SELECT version, argMax(checksum, at), argMax(applied, at) "
        "FROM llmloop_migrations GROUP BY version ORDER BY version"
    )
    return {int(v): str(c) for v, c, applied in result.rows if applied}


def migrate(
    store: Store,
    target: int | None = None,
    directory: Path | None = None,
    cluster: Cluster | str | None = None,
) -> MigrationReport:
    """Bring the schema to ``target`` (default: the newest), up or down; on ``cluster``
    (a name in the servers' ``remote_servers``) when given."""
    if isinstance(cluster, str):
        cluster = Cluster(cluster) if cluster else None
    migrations = load_migrations(directory)
    applied = applied_versions(store, cluster)
    report = MigrationReport()
    newest = migrations[-1].version if migrations else 0
    target = newest if target is None else target
    for m in migrations:
        if m.version in applied and applied[m.version] != m.checksum:
            report.warnings.append(
                f"{m.label} changed after it was applied; released migrations must not be "
                "edited: add a new one instead"
            )
    for m in migrations:
        if m.version <= target and m.version not in applied:
            _run(store, m.up, m, cluster)
            _record(store, m, applied=True)
            report.applied.append(m.label)
            log.info("applied migration %s", m.label)
    for m in reversed(migrations):
        if m.version > target and m.version in applied:
            _run(store, m.down, m, cluster)
            _record(store, m, applied=False)
            report.rolled_back.append(m.label)
            log.info("rolled back migration %s", m.label)
    report.current = max(applied_versions(store, cluster), default=0)
    return report


def render(script: str, cluster: Cluster | None) -> list[str]:
    """The statements of a migration script as they run: single-node, or for ``cluster``."""
    return cluster.render_script(script) if cluster else split_statements(script)


def _run(store: Store, script: str, migration: Migration, cluster: Cluster | None) -> None:
    for statement in render(script, cluster):
        try:
            store.command(statement)
        except StoreError as exc:
            raise StoreError(f"migration {migration.label} failed: {exc}") from exc


def _record(store: Store, m: Migration, *, applied: bool) -> None:
    store.command(
        "INSERT INTO llmloop_migrations (version, name, checksum, applied) "
        "VALUES ({version:UInt32}, {name:String}, {checksum:String}, {applied:Bool})",
        {"version": m.version, "name": m.name, "checksum": m.checksum, "applied": applied},
    )
