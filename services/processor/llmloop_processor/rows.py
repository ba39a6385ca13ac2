"""Events to table rows: one Arrow table per ClickHouse table, typed explicitly.

Missing optional strings become '' and missing numbers NULL, matching the
migrations in ``schemas/clickhouse``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa

from llmloop.events import (
    AlertStateChanged,
    BaselinePinned,
    ChatMessage,
    CompletionLogged,
    FeedbackGiven,
    MetricComputed,
    NotificationAttempted,
    RetrainJobUpdated,
)

TS = pa.timestamp("ms", tz="UTC")
LABELS = pa.map_(pa.string(), pa.string())
FLOATS = pa.map_(pa.string(), pa.float64())
STRINGS = pa.list_(pa.string())


@dataclass(frozen=True)
class TableSpec:
    """How events of one type land in one table."""

    table: str
    # The partition time (column, and the event attribute it comes from): it bounds
    # the duplicate look-up to the parts that can hold a redelivered event.
    time_column: str
    time_attribute: str
    schema: pa.Schema
    row: Callable[[Any], dict[str, Any]]

    def to_arrow(self, events: Sequence[Any]) -> pa.Table:
        rows = [self.row(e) for e in events]
        return pa.Table.from_pylist(rows, schema=self.schema)


def _common(e: Any) -> dict[str, Any]:
    return {"event_id": str(e.event_id), "project_id": e.project_id or "", "ts": e.timestamp}


def messages_json(messages: Sequence[ChatMessage] | None) -> str:
    """Chat messages as the JSON text the ``prompt`` and ``choices`` columns hold."""
    return orjson.dumps([m.model_dump(exclude_none=True) for m in messages or []]).decode()


def _completion(e: CompletionLogged) -> dict[str, Any]:
    chat = not isinstance(e.prompt, str)
    return {
        **_common(e),
        "trace_id": e.trace_id or "",
        "parent_id": e.parent_id or "",
        "model": e.model,
        "model_version": e.model_version or "",
        "prompt_template": e.prompt_template or "",
        "prompt_version": e.prompt_version or "",
        "prompt_format": "chat" if chat else "text",
        "prompt": messages_json(e.prompt) if chat else e.prompt,  # type: ignore[arg-type]
        "completion": e.completion,
        "prompt_tokens": e.prompt_tokens,
        "completion_tokens": e.completion_tokens,
        "latency_ms": e.latency_ms,
        "cost_usd": e.cost_usd,
        "user_id": e.user_id or "",
        "session_id": e.session_id or "",
        "attributes": list(e.attributes.items()),
        "tags": e.tags,
        "metadata": orjson.dumps(e.metadata).decode(),
        # OpenTelemetry GenAI fields, migration 0015 (issue 13).
        "span_id": e.span_id or "",
        "request_model": e.request_model or "",
        "response_model": e.response_model or "",
        "response_id": e.response_id or "",
        "finish_reasons": e.finish_reasons or [],
        "choices": messages_json(e.choices) if e.choices else "",
        "cache_read_tokens": e.cache_read_tokens,
        "cache_write_tokens": e.cache_write_tokens,
        "reasoning_tokens": e.reasoning_tokens,
        "error_type": e.error_type or "",
    }


def _feedback(e: FeedbackGiven) -> dict[str, Any]:
    value = getattr(e, "value", None)
    chosen, rejected = getattr(e, "chosen_id", None), getattr(e, "rejected_id", None)
    return {
        **_common(e),
        "completion_id": str(e.completion_id),
        "kind": e.kind,  # type: ignore[attr-defined]
        "source": e.source,
        "evaluation": e.evaluation or "",  # migration 0017 (issue 13)
        "label": e.label or "",
        "value": None if value is None else float(value),
        "scale_min": getattr(e, "scale_min", None),
        "scale_max": getattr(e, "scale_max", None),
        "comment": e.comment or "",
        "correction": getattr(e, "correction", None) or "",
        "chosen_id": None if chosen is None else str(chosen),
        "rejected_id": None if rejected is None else str(rejected),
        "user_id": e.user_id or "",
        "metadata": orjson.dumps(e.metadata).decode(),
    }


def _metric(e: MetricComputed) -> dict[str, Any]:
    return {
        **_common(e),
        "name": e.name,
        "value": e.value,
        "labels": list(e.labels.items()),
        "window_start": e.window_start,
        "window_end": e.window_end,
        "sample_size": e.sample_size,
        "p_value": e.p_value,
        "p_value_raw": e.p_value_raw,
        "reference_size": e.reference_size,
        "rows_total": e.rows_total,
    }


def _alert(e: AlertStateChanged) -> dict[str, Any]:
    return {
        **_common(e),
        "rule": e.rule,
        "status": e.status,
        "fingerprint": e.fingerprint,
        "severity": e.severity,
        "labels": list(e.labels.items()),
        "annotations": list(e.annotations.items()),
        "value": e.value,
        "threshold": e.threshold,
        "starts_at": e.starts_at,
        "ends_at": e.ends_at,
    }


def _retrain(e: RetrainJobUpdated) -> dict[str, Any]:
    return {
        **_common(e),
        "job_id": e.job_id,
        "stage": e.stage,
        "model": e.model,
        "base_model": e.base_model or "",  # lineage, migration 0013 (issue 6)
        "launcher": e.launcher or "",
        "artifact_uri": e.artifact_uri or "",
        "dataset_version": e.dataset_version or "",
        "model_version": e.model_version or "",
        "progress": e.progress,
        "metrics": list(e.metrics.items()),
        "gate_passed": None if e.gate is None else e.gate.passed,
        "gate_reasons": [] if e.gate is None else e.gate.reasons,
        "message": e.message or "",
    }


def _model_version(e: RetrainJobUpdated) -> dict[str, Any]:
    registered: datetime = e.timestamp
    return {
        "project_id": e.project_id or "",
        "model": e.model,
        "version": e.model_version or e.job_id,
        "job_id": e.job_id,
        "base_model": e.base_model or "",  # lineage, migration 0012 (issue 6)
        "launcher": e.launcher or "",
        "artifact_uri": e.artifact_uri or "",
        "dataset_version": e.dataset_version or "",
        "metrics": list(e.metrics.items()),
        "gate_passed": bool(e.gate and e.gate.passed),
        "gate_reasons": [] if e.gate is None else e.gate.reasons,
        # A promotion (issue 6) repeats the version's lineage with a later time, so the
        # ReplacingMergeTree keeps it as the version's current row.
        "status": "promoted" if e.stage == "model_promoted" else "registered",
        "registered_at": registered,
        # The event's own time, not now(): a redelivered registration is an identical row.
        "updated_at": registered,
    }


def _schema(*fields: tuple[str, pa.DataType]) -> pa.Schema:
    common = [("event_id", pa.string()), ("project_id", pa.string()), ("ts", TS)]
    return pa.schema(common + list(fields))


S, F, U32 = pa.string(), pa.float64(), pa.uint32()

COMPLETIONS = TableSpec(
    "completions",
    "ts",
    "timestamp",
    _schema(
        ("trace_id", S),
        ("parent_id", S),
        ("model", S),
        ("model_version", S),
        ("prompt_template", S),
        ("prompt_version", S),
        ("prompt_format", S),
        ("prompt", S),
        ("completion", S),
        ("prompt_tokens", U32),
        ("completion_tokens", U32),
        ("latency_ms", F),
        ("cost_usd", F),
        ("user_id", S),
        ("session_id", S),
        ("attributes", LABELS),
        ("tags", STRINGS),
        ("metadata", S),
        ("span_id", S),
        ("request_model", S),
        ("response_model", S),
        ("response_id", S),
        ("finish_reasons", STRINGS),
        ("choices", S),
        ("cache_read_tokens", U32),
        ("cache_write_tokens", U32),
        ("reasoning_tokens", U32),
        ("error_type", S),
    ),
    _completion,
)
FEEDBACK = TableSpec(
    "feedback",
    "ts",
    "timestamp",
    _schema(
        ("completion_id", S),
        ("kind", S),
        ("source", S),
        ("evaluation", S),
        ("label", S),
        ("value", F),
        ("scale_min", F),
        ("scale_max", F),
        ("comment", S),
        ("correction", S),
        ("chosen_id", S),
        ("rejected_id", S),
        ("user_id", S),
        ("metadata", S),
    ),
    _feedback,
)
METRICS = TableSpec(
    "metrics",
    "window_end",
    "window_end",
    _schema(
        ("name", S),
        ("value", F),
        ("labels", LABELS),
        ("window_start", TS),
        ("window_end", TS),
        ("sample_size", U32),
        ("p_value", F),
        # Migration 0014 (issue 12): the raw p-value and the sizes behind a test.
        ("p_value_raw", F),
        ("reference_size", U32),
        ("rows_total", U32),
    ),
    _metric,
)
ALERTS = TableSpec(
    "alerts",
    "ts",
    "timestamp",
    _schema(
        ("rule", S),
        ("status", S),
        ("fingerprint", S),
        ("severity", S),
        ("labels", LABELS),
        ("annotations", LABELS),
        ("value", F),
        ("threshold", F),
        ("starts_at", TS),
        ("ends_at", TS),
    ),
    _alert,
)
RETRAIN_JOBS = TableSpec(
    "retrain_jobs",
    "ts",
    "timestamp",
    _schema(
        ("job_id", S),
        ("stage", S),
        ("model", S),
        ("base_model", S),
        ("launcher", S),
        ("artifact_uri", S),
        ("dataset_version", S),
        ("model_version", S),
        ("progress", F),
        ("metrics", FLOATS),
        ("gate_passed", pa.bool_()),
        ("gate_reasons", STRINGS),
        ("message", S),
    ),
    _retrain,
)
MODEL_VERSIONS_SCHEMA = pa.schema(
    [
        ("project_id", S),
        ("model", S),
        ("version", S),
        ("job_id", S),
        ("base_model", S),
        ("launcher", S),
        ("artifact_uri", S),
        ("dataset_version", S),
        ("metrics", FLOATS),
        ("gate_passed", pa.bool_()),
        ("gate_reasons", STRINGS),
        ("status", S),
        ("registered_at", TS),
        ("updated_at", TS),
    ]
)


def _notification(e: NotificationAttempted) -> dict[str, Any]:
    return {
        **_common(e),
        "notification_id": e.notification_id,
        "rule": e.rule,
        "fingerprint": e.fingerprint,
        "status": e.status,
        "receiver": e.receiver,
        "receiver_type": e.receiver_type,
        "attempt": e.attempt,
        "outcome": e.outcome,
        "http_status": e.http_status,
        "error": e.error or "",
        "duration_ms": e.duration_ms,
        "next_attempt_at": e.next_attempt_at,
    }


# Webhook delivery attempts from alerting (issue 5), migration 0010.
NOTIFICATION_ATTEMPTS = TableSpec(
    "notification_attempts",
    "ts",
    "timestamp",
    _schema(
        ("notification_id", S),
        ("rule", S),
        ("fingerprint", S),
        ("status", S),
        ("receiver", S),
        ("receiver_type", S),
        ("attempt", pa.uint16()),
        ("outcome", S),
        ("http_status", pa.uint16()),
        ("error", S),
        ("duration_ms", F),
        ("next_attempt_at", TS),
    ),
    _notification,
)


def _baseline(e: BaselinePinned) -> dict[str, Any]:
    return {
        "event_id": str(e.event_id),
        "project_id": e.project_id or "",
        "model": e.model,
        "prompt_version": e.prompt_version,
        "window_start": e.window_start,
        "window_end": e.window_end,
        "note": e.note,
        "set_at": e.timestamp,  # the pin's own time: the latest pin wins (ReplacingMergeTree)
    }


# Drift references pinned by `llmloop baseline set` (migrations 0008, 0020).
DRIFT_BASELINES = TableSpec(
    "drift_baselines",
    "set_at",
    "timestamp",
    pa.schema(
        [
            ("event_id", S),
            ("project_id", S),
            ("model", S),
            ("prompt_version", S),
            ("window_start", TS),
            ("window_end", TS),
            ("note", S),
            ("set_at", TS),
        ]
    ),
    _baseline,
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
    rows = [_model_version(e) for e in events if e.stage in ("model_registered", "model_promoted")]
    return pa.Table.from_pylist(rows, schema=MODEL_VERSIONS_SCHEMA)
