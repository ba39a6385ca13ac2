"""From raw event dicts to acknowledged bus records: validate, redact, publish, count."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from llmloop import topics
from llmloop.bus import BusError, EventBus, Record
from llmloop.events import (
    MAX_LABELS,
    MAX_MESSAGES,
    STAMPED_AT_INGEST,
    IngestEvent,
    encode_event,
    error_field,
    ingest_adapter,
    stamped_at_ingest,
)
from llmloop.urls import redact_url
from llmloop_ingest.metrics import IngestMetrics
from llmloop_ingest.redact import redact_event
from llmloop_ingest.settings import IngestSettings

log = logging.getLogger(__name__)

REDACTED_KEY = "llmloop_redacted"  # metadata entry: what redaction replaced, by kind

# Pydantic reports each unknown key and each bad label on its own: one 5 MB event
# of 400k unknown keys made 400k errors and ~600 MB of Python objects
# (tests/faults/test_bad_input.py). Objects far wider than any valid event are
# refused before validation with one error, and an event reports at most
# MAX_ERRORS_PER_EVENT errors.
MAX_EVENT_FIELDS = 64  # a v1 event has about 20
MAX_MESSAGE_FIELDS = 8  # a chat message has role, content and name
MAX_ERRORS_PER_EVENT = 20


class NotAcknowledged(Exception):
    """The bus did not acknowledge in time; nothing of the batch may be assumed accepted."""


@dataclass
class Checked:
    """A batch after validation: events to publish and, per rejected one, why."""

    events: list[IngestEvent] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    redacted: Counter[str] = field(default_factory=Counter)

    @property
    def rejected(self) -> int:
        return len({e["index"] for e in self.errors})


def _too_wide(raw: dict[str, Any]) -> tuple[str, str] | None:
    """The field and what is wrong when ``raw`` holds objects far wider than any valid event."""
    if len(raw) > MAX_EVENT_FIELDS:
        return "(event)", f"{len(raw)} fields; no event has more than {MAX_EVENT_FIELDS}"
    attributes = raw.get("attributes")
    if isinstance(attributes, dict) and len(attributes) > MAX_LABELS:
        return "attributes", f"{len(attributes)} labels; the limit is {MAX_LABELS}"
    prompt = raw.get("prompt")
    # Longer lists stop at pydantic's length check, before their items are looked at.
    if isinstance(prompt, list) and len(prompt) <= MAX_MESSAGES:
        for i, message in enumerate(prompt):
            if isinstance(message, dict) and len(message) > MAX_MESSAGE_FIELDS:
                return (
                    f"prompt.{i}",
                    f"{len(message)} fields; a chat message has role, content and name",
                )
    return None


def _error(index: int, event_id: Any, field_name: str, message: str) -> dict[str, Any]:
    return {
        "index": index,
        "event_id": event_id if isinstance(event_id, str) else None,
        "field": field_name,
        "message": message,
    }


class Publisher:
    """Validates and publishes one project's events; shared by the JSON and OTLP routes."""

    def __init__(self, bus: EventBus, settings: IngestSettings, metrics: IngestMetrics) -> None:
        self.bus = bus
        self.settings = settings
        self.metrics = metrics

    def check(self, raw_events: list[Any], project: str) -> Checked:
        """Validate each raw event as ``project``'s; redact when the project asks for it."""
        out = Checked()
        redacting = self.settings.redacts(project)
        for index, raw in enumerate(raw_events):
            if not isinstance(raw, dict):
                out.errors.append(_error(index, None, "(event)", "an event must be a JSON object"))
                continue
            if "event_id" not in raw:
                out.errors.append(
                    _error(
                        index,
                        None,
                        "event_id",
                        "event_id is required: a UUID the client makes, so that a retry "
                        "never counts twice",
                    )
                )
                continue
            too_wide = _too_wide(raw)
            if too_wide is not None:
                out.errors.append(_error(index, raw.get("event_id"), *too_wide))
                continue
            if redacting:
                counts: Counter[str] = Counter()
                raw = redact_event(raw, counts)
                if counts:
                    metadata = raw.get("metadata") or {}
                    if isinstance(metadata, dict):  # else validation names the field
                        raw["metadata"] = {**metadata, REDACTED_KEY: dict(counts)}
                    out.redacted.update(counts)
            try:
                # The project comes from the key; whatever the body says is overwritten.
                event = ingest_adapter.validate_python({**raw, "project_id": project})
            except ValidationError as exc:
                errors = exc.errors(include_url=False, include_input=False)
                out.errors.extend(
                    _error(index, raw.get("event_id"), error_field(e), e["msg"])
                    for e in errors[:MAX_ERRORS_PER_EVENT]
                )
                if len(errors) > MAX_ERRORS_PER_EVENT:
                    more = len(errors) - MAX_ERRORS_PER_EVENT
                    out.errors.append(
                        _error(index, raw.get("event_id"), "(event)", f"{more} more errors")
                    )
                continue
            out.events.append(event)
        if out.errors:
            self.metrics.rejected.labels("invalid").inc(out.rejected)
        for kind, n in out.redacted.items():
            self.metrics.redacted.labels(kind).inc(n)
        return out

    async def publish(self, events: list[IngestEvent]) -> None:
        """Return once the bus acknowledged every event; raise ``NotAcknowledged`` if not."""
        if not events:
            return
        # The validated events travel with their bytes: consumers in this process (`llmloop
        # up`) take them instead of parsing again (llmloop.consumer.decode).
        records = [
            Record(
                key=e.key(),
                value=encode_event(e),
                headers=(STAMPED_AT_INGEST,) if stamped_at_ingest(e) else (),
                event=e,
            )
            for e in events
        ]
        try:
            await asyncio.wait_for(
                self.bus.publish(topics.EVENTS, records), self.settings.publish_timeout_s
            )
        except (BusError, TimeoutError) as exc:
            self.metrics.bus_errors.inc()
            self.metrics.rejected.labels("bus_unavailable").inc(len(events))
            log.warning(
                "bus did not acknowledge %d events: %s",
                len(events),
                str(exc) or f"no answer in {self.settings.publish_timeout_s:g} s",
                extra={"events": len(events), "bus": redact_url(self.bus.url)},
            )
            raise NotAcknowledged(str(exc) or "timed out") from exc
        types = Counter(e.type for e in events)
        for type_, n in types.items():
            self.metrics.accepted.labels(type_).inc(n)
