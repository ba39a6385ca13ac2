"""OTLP log records of GenAI instrumentations: content events and evaluation results.

Content comes as ``gen_ai.client.inference.operation.details`` (the current
conventions, messages as structured attributes) or as the deprecated one
record per message (``gen_ai.system/user/assistant/tool.message`` and
``gen_ai.choice``, bodies ``{content, tool_calls, id}`` / ``{index,
finish_reason, message}``) that ``opentelemetry-instrumentation-openai-v2``
emits by default. The records of one span in one export make one
``completion_content`` event keyed by the span's completion id; the processor
joins it to the completion (see ``CompletionContentLogged``). A record without
a span id cannot be joined to anything: counted as ``unjoinable`` and logged.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from llmloop_ingest import messages, semconv
from llmloop_ingest.evaluations import evaluation
from llmloop_ingest.otlp import NAMESPACE, attributes, completion_id, value

log = logging.getLogger(__name__)

_CONTENT_EVENTS = {
    semconv.DETAILS_EVENT,
    semconv.CHOICE_EVENT,
    semconv.CONTENT_PROMPT_EVENT,
    semconv.CONTENT_COMPLETION_EVENT,
    *semconv.MESSAGE_EVENT_ROLES,
}


def event_name(record: LogRecord, attrs: dict[str, Any]) -> str:
    """The record's event name: the LogRecord field (OTLP 1.5+), else ``event.name``."""
    return str(record.event_name or attrs.get("event.name") or "")


class _Content:
    """The content records of one span, gathered in the order they came."""

    def __init__(self, trace_id: str, span_id: str) -> None:
        self.trace_id, self.span_id = trace_id, span_id
        self.prompt: list[dict[str, Any]] = []
        self.choices: list[tuple[int, dict[str, Any]]] = []
        self.model: Any = None
        self.keys: list[str] = []
        self.time = 0

    def add(self, name: str, record: LogRecord, attrs: dict[str, Any]) -> None:
        body = value(record.body) if record.HasField("body") else None
        self.model = self.model or semconv.first(attrs, "response_model")
        self.model = self.model or semconv.first(attrs, "request_model")
        when = record.time_unix_nano or record.observed_time_unix_nano
        self.time = min(self.time or when, when)
        self.keys.append(f"{name}/{when}/{len(self.keys)}")
        if name == semconv.DETAILS_EVENT:
            prompt, choices = messages.from_attributes(
                {**attrs, **(body or {})} if isinstance(body, dict) else attrs
            )
            self.prompt += prompt
            self.choices += list(enumerate(choices, len(self.choices)))
        elif name in semconv.MESSAGE_EVENT_ROLES:
            self.prompt.append(messages.event_body(semconv.MESSAGE_EVENT_ROLES[name], body))
        elif name == semconv.CHOICE_EVENT:
            index = body.get("index") if isinstance(body, dict) else None
            order = index if isinstance(index, int) else len(self.choices)
            self.choices.append((order, messages.choice_body(body)))
        elif name == semconv.CONTENT_PROMPT_EVENT:
            self.prompt += messages.legacy_text(attrs.get(semconv.LEGACY_PROMPT), "user")
        elif name == semconv.CONTENT_COMPLETION_EVENT:
            legacy = messages.legacy_text(attrs.get(semconv.LEGACY_COMPLETION), "assistant")
            self.choices += list(enumerate(legacy, len(self.choices)))

    def event(self) -> dict[str, Any]:
        ident = uuid.uuid5(NAMESPACE, f"content/{self.trace_id}/{self.span_id}/{self.keys}")
        out: dict[str, Any] = {
            "type": "completion_content",
            "event_id": str(ident),
            "completion_id": str(completion_id(self.trace_id, self.span_id)),
            "trace_id": self.trace_id or None,
            "span_id": self.span_id,
            "prompt": self.prompt,
            "choices": [c for _, c in sorted(self.choices, key=lambda item: item[0])],
        }
        if self.model:
            out["model"] = str(self.model)[:256]
        if self.time:
            out["timestamp"] = datetime.fromtimestamp(self.time / 1e9, UTC)
        return out


def logs_to_events(request: ExportLogsServiceRequest) -> tuple[list[dict[str, Any]], Counter[str]]:
    """Content and feedback event dicts of an export, and how every record counted."""
    contents: dict[tuple[str, str], _Content] = {}
    feedback: list[dict[str, Any]] = []
    counts: Counter[str] = Counter()
    for resource_logs in request.resource_logs:
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                attrs = attributes(record.attributes)
                name = event_name(record, attrs)
                trace_id, span_id = record.trace_id.hex(), record.span_id.hex()
                if name == semconv.EVALUATION_EVENT:
                    found = evaluation(attrs, trace_id, span_id, record.time_unix_nano)
                    if found is None:
                        counts["unjoinable"] += 1
                        log.info(
                            "otlp logs: refused an evaluation result: it names no span or response"
                        )
                    else:
                        feedback.append(found)
                    continue
                if name not in _CONTENT_EVENTS:
                    counts["not_genai"] += 1
                    continue
                if not span_id:
                    counts["unjoinable"] += 1
                    log.info("otlp logs: refused a %s record: it names no span to join", name)
                    continue
                key = (trace_id, span_id)
                contents.setdefault(key, _Content(trace_id, span_id)).add(name, record, attrs)
                counts["content"] += 1
    return [c.event() for c in contents.values()] + feedback, counts
