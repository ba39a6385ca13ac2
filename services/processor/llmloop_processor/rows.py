"""Events to table rows: one Arrow table per ClickHouse table, typed explicitly.

Each table is a list of ``Column``s (name, Arrow type, value of an event), from
which its schema and its rows both come. Missing optional strings become '' and
missing numbers NULL, matching the migrations in ``schemas/clickhouse``
(``tests/contract/test_dashboards.py`` compares every written schema with them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any
from uuid import UUID

import numpy as np
import orjson
import pyarrow as pa

from llmloop.events import ChatMessage, CompletionLogged, FeedbackGiven, RetrainJobUpdated

TS = pa.timestamp("ms", tz="UTC")
LABELS = pa.map_(pa.string(), pa.string())
FLOATS = pa.map_(pa.string(), pa.float64())
STRINGS = pa.list_(pa.string())
S, F, U32, BOOL = pa.string(), pa.float64(), pa.uint32(), pa.bool_()


@dataclass(frozen=True)
class Column:
    """One column of a table: its name, its Arrow type and its value for one event.

    A table is built column by column (one list per column, not one dict per row):
    the sink writes every event, and a dict per row was most of its Python time
    (issue 14). ``default`` replaces a missing (None) value: optional strings are ''.
    """

    name: str
    type: pa.DataType
    value: Callable[[Any], Any]
    default: Any = None

    def array(self, events: Sequence[Any]) -> pa.Array:
        values = pa.array(list(map(self.value, events)), type=self.type)
        return values if self.default is None else values.fill_null(self.default)


def field(name: str, kind: pa.DataType, attr: str | None = None, default: Any = None) -> Column:
    """The column of an event attribute (``name`` unless ``attr`` says another)."""
    return Column(name, kind, attrgetter(attr or name), default)


def text(name: str, attr: str | None = None) -> Column:
    """An optional string attribute: missing is ''."""
    return field(name, S, attr, "")


def schema_of(columns: Sequence[Column]) -> pa.Schema:
    return pa.schema([(c.name, c.type) for c in columns])


def table(columns: Sequence[Column], events: Sequence[Any]) -> pa.Table:
    """``events`` as one Arrow table of ``columns``."""
    return pa.Table.from_arrays([c.array(events) for c in columns], schema=schema_of(columns))


@dataclass(frozen=True)
class TableSpec:
    """How events of one type land in one table."""

    table: str
    # The partition time (column, and the event attribute it comes from): it bounds
    # the duplicate look-up to the parts that can hold a redelivered event.
    time_column: str
    time_attribute: str
    columns: tuple[Column, ...]
    # The table's key holds the project and the event id, so a batch the writer has
    # deduplicated holds no two rows of one key: its insert skips the engine's fold on
    # insert (``Store.insert(unique_keys=True)``). False where the key is another.
    keyed_by_event: bool = True

    @property
    def schema(self) -> pa.Schema:
        return schema_of(self.columns)

    def to_arrow(self, events: Sequence[Any]) -> pa.Table:
        return table(self.columns, events)


def _json(value: dict[str, Any]) -> str:
    return orjson.dumps(value).decode() if value else "{}"


def _optional(attr: str) -> Callable[[Any], Any]:
    """An attribute that only some kinds of an event union carry."""
    return lambda e: getattr(e, attr, None)


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
# Where the 32 hex digits of a UUID go in its 36-character text (dashes at 8, 13, 18, 23).
_DIGIT_AT = np.array([i for i in range(36) if i not in (8, 13, 18, 23)])


def uuid_chars(ids: Sequence[UUID], width: int = 36) -> np.ndarray:
    """``str(u)`` of each id as a row of ``width`` bytes (past 36, commas), for the batch
    at once: ``str`` of a UUID per id and column was a microsecond each (issue 14)."""
    raw = np.frombuffer(b"".join([u.bytes for u in ids]), dtype=np.uint8).reshape(-1, 16)
    nibbles = np.empty((len(ids), 32), dtype=np.uint8)
    nibbles[:, 0::2], nibbles[:, 1::2] = raw >> 4, raw & 15
    out = np.full((len(ids), width), ord(","), dtype=np.uint8)
    out[:, [8, 13, 18, 23]] = ord("-")
    out[:, _DIGIT_AT] = _HEX[nibbles]
    return out


def uuid_array(ids: Sequence[UUID | None]) -> pa.Array:
    """Ids as an Arrow string column, NULL where there is none."""
    present = [u for u in ids if u is not None]
    if not present:
        return pa.nulls(len(ids), S)
    if len(present) < len(ids):
        return pa.array([None if u is None else str(u) for u in ids], S)
    offsets = np.arange(0, 36 * len(ids) + 1, 36, dtype=np.int32)
    return pa.StringArray.from_buffers(
        len(ids), pa.py_buffer(offsets), pa.py_buffer(uuid_chars(present))
    )


@dataclass(frozen=True)
class UuidColumn(Column):
    """An id attribute (a UUID) as text, converted for the whole column at once."""

    def array(self, events: Sequence[Any]) -> pa.Array:
        return uuid_array(list(map(self.value, events)))


def uuid_text(name: str) -> Column:
    """An id attribute (a UUID) as text; NULL where the event has none."""
    return UuidColumn(name, S, lambda e: getattr(e, name, None))


# Every event table starts with these (time column ``ts``).
COMMON = (
    uuid_text("event_id"),
    text("project_id"),
    field("ts", TS, "timestamp"),
)


def messages_json(messages: Sequence[ChatMessage] | None) -> str:
    """Chat messages as the JSON text the ``prompt`` and ``choices`` columns hold."""
    return orjson.dumps([m.model_dump(exclude_none=True) for m in messages or []]).decode()


def _prompt(e: CompletionLogged) -> str:
    return e.prompt if isinstance(e.prompt, str) else messages_json(e.prompt)


COMPLETIONS = TableSpec(
    "completions",
    "ts",
    "timestamp",
    (
        *COMMON,
        text("trace_id"),
        text("parent_id"),
        field("model", S),
        text("model_version"),
        text("prompt_template"),
        text("prompt_version"),
        Column("prompt_format", S, lambda e: "text" if isinstance(e.prompt, str) else "chat"),
        Column("prompt", S, _prompt),
        field("completion", S),
        field("prompt_tokens", U32),
        field("completion_tokens", U32),
        field("latency_ms", F),
        field("cost_usd", F),
        text("user_id"),
        text("session_id"),
        field("attributes", LABELS),
        field("tags", STRINGS),
        Column("metadata", S, lambda e: _json(e.metadata)),
        # OpenTelemetry GenAI fields, migration 0015 (issue 13).
        text("span_id"),
        text("request_model"),
        text("response_model"),
        text("response_id"),
        Column("finish_reasons", STRINGS, lambda e: e.finish_reasons or []),
        Column("choices", S, lambda e: messages_json(e.choices) if e.choices else ""),
        field("cache_read_tokens", U32),
        field("cache_write_tokens", U32),
        field("reasoning_tokens", U32),
        text("error_type"),
    ),
)


def _value(e: FeedbackGiven) -> float | None:
    value = getattr(e, "value", None)
    return None if value is None else float(value)


FEEDBACK = TableSpec(
    "feedback",
    "ts",
    "timestamp",
    (
        *COMMON,
        uuid_text("completion_id"),
        field("kind", S),
        field("source", S),
        text("evaluation"),  # migration 0017 (issue 13)
        text("label"),
        Column("value", F, _value),
        Column("scale_min", F, _optional("scale_min")),
        Column("scale_max", F, _optional("scale_max")),
        text("comment"),
        Column("correction", S, _optional("correction"), ""),
        uuid_text("chosen_id"),
        uuid_text("rejected_id"),
        text("user_id"),
        Column("metadata", S, lambda e: _json(e.metadata)),
    ),
)
METRICS = TableSpec(
    "metrics",
    "window_end",
    "window_end",
    (
        *COMMON,
        field("name", S),
        field("value", F),
        field("labels", LABELS),
        field("window_start", TS),
        field("window_end", TS),
        field("sample_size", U32),
        field("p_value", F),
        # Migration 0014 (issue 12): the raw p-value and the sizes behind a test.
        field("p_value_raw", F),
        field("reference_size", U32),
        field("rows_total", U32),
    ),
)
ALERTS = TableSpec(
    "alerts",
    "ts",
    "timestamp",
    (
        *COMMON,
        field("rule", S),
        field("status", S),
        field("fingerprint", S),
        field("severity", S),
        field("labels", LABELS),
        field("annotations", LABELS),
        field("value", F),
        field("threshold", F),
        field("starts_at", TS),
        field("ends_at", TS),
    ),
)

# What a job event and the version it registers share (lineage: migrations 0012-0013).
_LINEAGE = (
    text("base_model"),
    text("launcher"),
    text("artifact_uri"),
    text("dataset_version"),
)
_GATE_REASONS = Column("gate_reasons", STRINGS, lambda e: [] if e.gate is None else e.gate.reasons)

RETRAIN_JOBS = TableSpec(
    "retrain_jobs",
    "ts",
    "timestamp",
    (
        *COMMON,
        field("job_id", S),
        field("stage", S),
        field("model", S),
        *_LINEAGE,
        text("model_version"),
        field("progress", F),
        field("metrics", FLOATS),
        Column("gate_passed", BOOL, lambda e: None if e.gate is None else e.gate.passed),
        _GATE_REASONS,
        text("message"),
    ),
)
MODEL_VERSIONS = (
    text("project_id"),
    field("model", S),
    Column("version", S, lambda e: e.model_version or e.job_id),
    field("job_id", S),
    *_LINEAGE,
    field("metrics", FLOATS),
    Column("gate_passed", BOOL, lambda e: bool(e.gate and e.gate.passed)),
    _GATE_REASONS,
    # A promotion (issue 6) repeats the version's lineage with a later time, so the
    # ReplacingMergeTree keeps it as the version's current row.
    Column("status", S, lambda e: "promoted" if e.stage == "model_promoted" else "registered"),
    field("registered_at", TS, "timestamp"),
    # The event's own time, not now(): a redelivered registration is an identical row.
    field("updated_at", TS, "timestamp"),
)

# Webhook delivery attempts from alerting (issue 5), migration 0010.
NOTIFICATION_ATTEMPTS = TableSpec(
    "notification_attempts",
    "ts",
    "timestamp",
    (
        *COMMON,
        field("notification_id", S),
        field("rule", S),
        field("fingerprint", S),
        field("status", S),
        field("receiver", S),
        field("receiver_type", S),
        field("attempt", pa.uint16()),
        field("outcome", S),
        field("http_status", pa.uint16()),
        text("error"),
        field("duration_ms", F),
        field("next_attempt_at", TS),
    ),
)

# Drift references pinned by `llmloop baseline set` (migrations 0008, 0020).
DRIFT_BASELINES = TableSpec(
    "drift_baselines",
    "set_at",
    "timestamp",
    (
        uuid_text("event_id"),
        text("project_id"),
        field("model", S),
        field("prompt_version", S),
        field("window_start", TS),
        field("window_end", TS),
        field("note", S),
        # The pin's own time: the latest pin wins (ReplacingMergeTree).
        field("set_at", TS, "timestamp"),
    ),
    keyed_by_event=False,  # one row per (project, model, prompt version): the latest pin
)

# Event wire type -> where it lands.
SPECS: dict[str, TableSpec] = {
    "completion": COMPLETIONS,
    "feedback": FEEDBACK,
    "metric": METRICS,
    "alert": ALERTS,
    "retrain": RETRAIN_JOBS,
    "notification": NOTIFICATION_ATTEMPTS,
    "baseline": DRIFT_BASELINES,
}


def model_version_rows(events: Sequence[RetrainJobUpdated]) -> pa.Table:
    versions = [e for e in events if e.stage in ("model_registered", "model_promoted")]
    return table(MODEL_VERSIONS, versions)
