"""The cluster form of the migrations, generated from the single-node files.

With ``LLMLOOP_CLICKHOUSE_CLUSTER=NAME`` (or ``llmloop migrate --cluster NAME``) every
migration runs ``ON CLUSTER 'NAME'``, and each table becomes two:

* ``<table>_local`` on every node: the same columns, keys, partitions, TTL and
  indices, with the engine's Replicated twin (``ReplacingMergeTree(v)`` ->
  ``ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}',
  '{replica}', v)``), so each shard's replicas copy each other through Keeper;
* ``<table>``: a ``Distributed`` table over the locals, which the writer inserts into
  and every reader (processor, Grafana, the CLI) queries, so no SQL elsewhere changes.

The sharding key is a hash of the table's whole sorting key: rows that
``ReplacingMergeTree`` collapses (a redelivered event, a newer version of a row) have
equal sorting keys, so they land on one shard and still replace each other, and
``FINAL`` on the Distributed table (run on each shard) stays exact.

There is no second, hand-written copy to drift apart: statements are rewritten from
the single-node files, and a statement of a shape this module does not know is an
error (``ClusterDDLError``), never passed through unrendered. The ledger
(``llmloop_migrations``) is replicated to every node of every shard (one Keeper path
for all), so ``llmloop migrate`` reads the same record from any node.

Single-node stays the default. ClickHouse Cloud: leave the cluster unset; Cloud turns
``ReplacingMergeTree`` into its shared engine and replicates it itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llmloop.store.base import StoreError, split_statements

LOCAL_SUFFIX = "_local"
REPLICA_PATH = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'"
# The ledger is small and read by every migrate run: one replica set across all shards.
LEDGER_PATH = "'/clickhouse/tables/all/{database}/{table}', '{replica}'"

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_CREATE_TABLE = re.compile(rf"^CREATE TABLE IF NOT EXISTS ({_NAME})\s*\(", re.S)
_CREATE_VIEW = re.compile(rf"^CREATE VIEW IF NOT EXISTS ({_NAME})\s+AS\s", re.S)
_ALTER = re.compile(rf"^ALTER TABLE ({_NAME})\s+(.*)$", re.S)
_DROP = re.compile(rf"^DROP (TABLE|VIEW) IF EXISTS ({_NAME})$", re.S)
_ENGINE = re.compile(
    r"^ENGINE\s*=\s*((?:Replacing|Summing|Aggregating|Collapsing|VersionedCollapsing)?MergeTree)"
    r"(?:\((.*?)\))?\s*$",
    re.M,
)
_ORDER_BY = re.compile(r"^ORDER BY\s+(.+?)\s*$", re.M)
# ALTER clauses a Distributed table takes too (its columns mirror the local table's).
_COLUMN_CLAUSE = re.compile(r"^(ADD|DROP|MODIFY|RENAME|COMMENT)\s+COLUMN\b", re.I)


class ClusterDDLError(StoreError):
    """A migration statement has a shape the cluster renderer does not handle."""


@dataclass(frozen=True)
class Cluster:
    """A ClickHouse cluster (a ``remote_servers`` name) the migrations run on."""

    name: str

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.\-{}]+", self.name):
            raise ClusterDDLError(f"cluster name {self.name!r}: letters, digits, _ . - only")

    @property
    def on(self) -> str:
        return f" ON CLUSTER '{self.name}'"

    def render(self, statement: str) -> list[str]:
        """The cluster statements for one single-node statement, in the order to run."""
        comments, code = _split_comments(statement)
        if m := _CREATE_TABLE.match(code):
            return [comments + s for s in self._create_table(m[1], code)]
        if m := _CREATE_VIEW.match(code):
            return [comments + code.replace(m[1], m[1] + self.on, 1)]
        if m := _ALTER.match(code):
            return [comments + s for s in self._alter(m[1], m[2])]
        if m := _DROP.match(code):
            kind, name = m[1], m[2]
            if kind == "VIEW":
                return [f"DROP VIEW IF EXISTS {name}{self.on} SYNC"]
            # SYNC: a table created again at once must not meet its old Keeper path.
            return [
                f"DROP TABLE IF EXISTS {name}{self.on} SYNC",
                f"DROP TABLE IF EXISTS {name}{LOCAL_SUFFIX}{self.on} SYNC",
            ]
        raise ClusterDDLError(
            "the cluster renderer does not know this statement's shape; extend "
            f"llmloop.store.cluster for it:\n{code[:300]}"
        )

    def render_script(self, script: str) -> list[str]:

        return [out for statement in split_statements(script) for out in self.render(statement)]

    def ledger(self, single_node: str) -> str:
        """The migration ledger, replicated to every node (not distributed)."""
        code = single_node.strip()
        m = _CREATE_TABLE.match(code)
        if not m or not _ENGINE.search(code):
            raise ClusterDDLError("the ledger DDL changed shape")
        return _replicated(code.replace(m[1], m[1] + self.on, 1), LEDGER_PATH)

    def _create_table(self, name: str, code: str) -> list[str]:
        engine = _ENGINE.search(code)
        order = _ORDER_BY.search(code)
        if not engine or not order:
            raise ClusterDDLError(
                f"table {name}: expected a MergeTree-family ENGINE and an ORDER BY"
            )
        local = name + LOCAL_SUFFIX
        head = code.replace(name, local + self.on, 1)
        key = order[1].strip()
        key = key[1:-1] if key.startswith("(") and key.endswith(")") else key
        distributed = (
            f"CREATE TABLE IF NOT EXISTS {name}{self.on} AS {local}\n"
            f"ENGINE = Distributed('{self.name}', currentDatabase(), '{local}', "
            f"cityHash64({key}))"
        )
        return [_replicated(head, REPLICA_PATH), distributed]

    def _alter(self, name: str, clauses_text: str) -> list[str]:
        clauses = _split_clauses(clauses_text)
        local = f"ALTER TABLE {name}{LOCAL_SUFFIX}{self.on}\n    " + ",\n    ".join(clauses)
        columns = [c for c in clauses if _COLUMN_CLAUSE.match(c)]
        out = [local]
        if columns:
            out.append(f"ALTER TABLE {name}{self.on}\n    " + ",\n    ".join(columns))
        return out


def _replicated(code: str, path: str) -> str:
    engine = _ENGINE.search(code)
    assert engine is not None  # callers checked
    args = f"{path}, {engine[2]}" if engine[2] else path
    return code[: engine.start()] + f"ENGINE = Replicated{engine[1]}({args})" + code[engine.end() :]


def _split_comments(statement: str) -> tuple[str, str]:
    """(the leading ``--`` comment lines, the code)."""
    lines = statement.strip().splitlines()
    i = 0
    while i < len(lines) and lines[i].strip().startswith("--"):
        i += 1
    comments = "".join(line + "\n" for line in lines[:i])
    return comments, "\n".join(lines[i:]).strip()


def _split_clauses(text: str) -> list[str]:
    """ALTER clauses, split at commas outside parentheses and quotes."""
    clauses, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote and text[i - 1] != "\\":
                quote = ""
        elif ch in "'`\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            clauses.append(text[start:i].strip())
            start = i + 1
    clauses.append(text[start:].strip())
    return [c for c in clauses if c]
