"""What the SDK's sync and async clients share: building events, and judging answers.

Kept free of I/O so both clients (a thread, an asyncio task) make the same
decisions: what to resend, what to split, what to drop and say why.
"""

from __future__ import annotations

import gzip
import logging
import uuid
from dataclasses import dataclass
from enum import Enum
from typing import Any

import orjson
from pydantic import ValidationError

from llmloop.events import encode_event, error_field, ingest_adapter
from llmloop.retry import parse_retry_after

log = logging.getLogger("llmloop.sdk")

_FEEDBACK_VALUE_FIELD = {
    "thumbs": "value",
    "score": "value",
    "comment": "comment",
    "correction": "correction",
}


def build_event(fields: dict[str, Any]) -> tuple[str, bytes | None]:
    """The event id and wire form of an event; ``None`` (and a log line) when invalid.

    Validating here tells the developer at once what to fix, instead of a 207 later.
    """
    fields.setdefault("event_id", str(uuid.uuid4()))
    event_id = str(fields["event_id"])
    try:
        event = ingest_adapter.validate_python(fields)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        log.warning(
            "llmloop dropped %s event %s: %s: %s",
            fields.get("type", "an"),
            event_id,
            error_field(first),
            first["msg"],
        )
        return event_id, None
    return str(event.event_id), encode_event(event)


def feedback_fields(
    completion_id: str | uuid.UUID | None, kind: str, value: Any, extra: dict[str, Any]
) -> dict[str, Any]:
    """Fields of a feedback event: ``value`` goes where ``kind`` keeps it."""
    fields: dict[str, Any] = {"type": "feedback", "kind": kind, **extra}
    if completion_id is not None:
        fields["completion_id"] = completion_id
    if value is not None:
        if kind == "thumbs" and isinstance(value, bool):
            value = 1 if value else -1
        fields[_FEEDBACK_VALUE_FIELD.get(kind, "value")] = value
    return fields


def batch_body(events: list[bytes]) -> bytes:
    """A gzip'd ``{"events": [...]}`` from events already in wire form."""
    return gzip.compress(b'{"events":[' + b",".join(events) + b"]}", compresslevel=1)


class Verdict(Enum):
    DELIVERED = "delivered"  # everything the server could accept is durable
    RETRY = "retry"  # transient: back off and send the same batch again
    SPLIT = "split"  # too large: send it in halves
    HOLD = "hold"  # the key was refused: keep the batch (spool) until someone fixes it


@dataclass(frozen=True)
class Answer:
    verdict: Verdict
    retry_after_s: float | None = None


def judge(status: int, headers: Any, body: bytes, size: int) -> Answer:
    """What to do with a batch of ``size`` events after the server answered ``status``."""
    if status in (200, 202):
        return Answer(Verdict.DELIVERED)
    if status in (207, 422):
        _log_rejections(body)
        return Answer(Verdict.DELIVERED)
    if status == 413 and size > 1:
        return Answer(Verdict.SPLIT)
    if status in (401, 403):
        log.error("llmloop: the collector refused the API key (%s); events are kept", status)
        return Answer(Verdict.HOLD)
    if status == 429 or status >= 500:
        return Answer(Verdict.RETRY, _retry_after(headers))
    # 400, 413 of one event, 415 ...: resending cannot help.
    log.error(
        "llmloop dropped %d events: the collector answered %d: %s",
        size,
        status,
        body[:300].decode(errors="replace"),
    )
    return Answer(Verdict.DELIVERED)


def _retry_after(headers: Any) -> float | None:
    seconds = parse_retry_after(headers.get("retry-after"))
    return None if seconds is None else min(seconds, 60.0)


def _log_rejections(body: bytes) -> None:
    try:
        errors = orjson.loads(body).get("errors", [])
    except (orjson.JSONDecodeError, AttributeError):
        errors = []
    for err in errors[:20]:
        log.warning(
            "llmloop: the collector rejected event %s: %s: %s",
            err.get("event_id"),
            err.get("field"),
            err.get("message"),
        )
