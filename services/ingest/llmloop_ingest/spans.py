"""GenAI spans to completion events, by the tables in ``semconv``.

Only inference spans become completions: ``gen_ai.operation.name`` (or the
instrumentation's own kind attribute) names an inference, or names nothing and
the span carries messages or token counts. Agent, tool, workflow, embeddings
and retrieval spans are trace context: counted, never stored as completions,
so an agent span around a chat call does not count the call twice (the chat
span keeps its parent id). A failed call keeps its prompt and gets
``error_type`` instead of an empty answer.

The event id is a UUID derived from trace and span id, so an exporter's retry
re-sends the same event and downstream dedup keeps one; content that arrives
as log records (``otlp_logs``) is keyed by the same id.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from llmloop_ingest import messages, semconv
from llmloop_ingest.evaluations import span_evaluations
from llmloop_ingest.otlp import attributes, completion_id

_TOKENS = (
    ("prompt_tokens", "input_tokens"),
    ("completion_tokens", "output_tokens"),
    ("cache_read_tokens", "cache_read_tokens"),
    ("cache_write_tokens", "cache_write_tokens"),
    ("reasoning_tokens", "reasoning_tokens"),
)


@dataclass
class Mapped:
    """What a trace export held: completion events, evaluation feedback, and span counts."""

    events: list[dict[str, Any]] = field(default_factory=list)
    feedback: list[dict[str, Any]] = field(default_factory=list)
    spans: Counter[str] = field(default_factory=Counter)  # outcome -> spans


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError, OverflowError):  # OverflowError: a double attribute = inf
        return None


def kind(attrs: dict[str, Any], has_content: bool) -> str:
    """``completion``, ``context`` (agent, tool, embeddings ...) or ``not_genai``."""
    operation = str(semconv.first(attrs, "operation") or "").lower()
    if operation in semconv.INFERENCE_OPERATIONS:
        return "completion"
    if operation in semconv.CONTEXT_OPERATIONS:
        return "context"
    model = semconv.first(attrs, "request_model") or semconv.first(attrs, "response_model")
    tokens = semconv.first(attrs, "input_tokens") or semconv.first(attrs, "output_tokens")
    if not operation and (has_content or (model and tokens is not None)):
        return "completion"
    return "context" if operation or model else "not_genai"


def _span_events(span: Span, prompt: list[Any], choices: list[Any]) -> None:
    """Content written as span events: the details event and the deprecated per-message forms."""
    from_events: list[Any] = []
    for event in span.events:
        body = attributes(event.attributes)
        name = event.name
        if name == semconv.DETAILS_EVENT:
            p, c = messages.from_attributes(body)
            prompt[:0] = [] if prompt else p
            choices[:0] = [] if choices else c
        elif name in semconv.MESSAGE_EVENT_ROLES:
            from_events.append(messages.event_body(semconv.MESSAGE_EVENT_ROLES[name], body))
        elif name == semconv.CHOICE_EVENT:
            if not choices or from_events:
                choices.append(messages.choice_body(body))
        elif name == semconv.CONTENT_PROMPT_EVENT and not prompt:
            prompt += messages.legacy_text(body.get(semconv.LEGACY_PROMPT), "user")
        elif name == semconv.CONTENT_COMPLETION_EVENT and not choices:
            choices += messages.legacy_text(body.get(semconv.LEGACY_COMPLETION), "assistant")
    if from_events and not prompt:
        prompt += from_events


def _invocation_model(attrs: dict[str, Any]) -> str | None:
    """OpenInference keeps the request's parameters, model included, as one JSON object."""
    params = attrs.get(semconv.OI_INVOCATION_PARAMETERS)
    decoded = messages.decode_object(params) if isinstance(params, str) else None
    model = decoded.get("model") if decoded else None
    return model if isinstance(model, str) and model else None


def _error(span: Span, attrs: dict[str, Any]) -> str | None:
    error = semconv.first(attrs, "error_type")
    if error is None and span.status.code == Status.STATUS_CODE_ERROR:
        thrown = [attributes(e.attributes) for e in span.events if e.name == "exception"]
        error = thrown[0].get("exception.type") if thrown else None
        error = error or "_OTHER"  # the conventions' value for an unknown error type
    return None if error is None else str(error)[:256]


def prompt_value(prompt: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """A lone user text message is a text prompt; anything else stays chat messages."""
    if len(prompt) == 1 and prompt[0]["role"] == "user" and set(prompt[0]) == {"role", "content"}:
        return str(prompt[0]["content"])
    return prompt or ""


def span_to_event(span: Span, resource: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """How the span counts (``kind``) and, for an inference, its completion event dict."""
    attrs = attributes(span.attributes)
    prompt, choices = messages.from_attributes(attrs)
    _span_events(span, prompt, choices)
    outcome = kind(attrs, bool(prompt or choices))
    if outcome != "completion":
        return outcome, None
    trace_id, span_id = span.trace_id.hex(), span.span_id.hex()
    request_model = semconv.first(attrs, "request_model") or _invocation_model(attrs)
    response_model = semconv.first(attrs, "response_model")
    event: dict[str, Any] = {
        "type": "completion",
        "event_id": str(completion_id(trace_id, span_id)),
        # A span without a model attribute is still a call: kept, as model "unknown".
        # Not cut to length: a model name past the limit is refused in partial_success.
        "model": str(response_model or request_model or "unknown"),
        "prompt": prompt_value(prompt),
        "completion": choices[0]["content"] if choices else "",
        "trace_id": trace_id or None,
        "span_id": span_id or None,
        "parent_id": span.parent_span_id.hex() or None,
    }
    if len(choices) > 1 or (choices and set(choices[0]) - {"role", "content"}):
        event["choices"] = choices
    if span.start_time_unix_nano:
        event["timestamp"] = datetime.fromtimestamp(span.start_time_unix_nano / 1e9, UTC)
        if span.end_time_unix_nano >= span.start_time_unix_nano:
            event["latency_ms"] = (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6
    for name, source in _TOKENS:
        value = _int(semconv.first(attrs, source))
        if value is not None:
            event[name] = value
    optional = {
        "request_model": request_model,
        "response_model": response_model,
        "response_id": semconv.first(attrs, "response_id"),
        "user_id": semconv.first(attrs, "user"),
        "session_id": semconv.first(attrs, "conversation"),
    }
    event.update({k: str(v)[:256] for k, v in optional.items() if v is not None})
    reasons = semconv.first(attrs, "finish_reasons")
    reasons = reasons if isinstance(reasons, list) else [reasons] if reasons else []
    reasons = reasons or [c["finish_reason"] for c in choices if c.get("finish_reason")]
    if reasons:
        event["finish_reasons"] = [str(r)[:256] for r in reasons if r not in (None, "")]
    error = _error(span, attrs)
    if error is not None:
        event["error_type"] = error
    labels = {
        "service": resource.get("service.name"),
        "provider": semconv.first(attrs, "provider"),
        "operation": semconv.first(attrs, "operation"),
        "agent": semconv.first(attrs, "agent"),
    }
    event["attributes"] = {k: str(v)[:1024] for k, v in labels.items() if v}
    event["tags"] = ["otlp"]
    return outcome, event


def richness(event: dict[str, Any]) -> tuple[bool, bool, int]:
    """How much of a call an event holds: the copy to keep among duplicates is the richest."""
    return bool(event.get("prompt")), bool(event.get("completion")), len(event)


def request_to_events(request: ExportTraceServiceRequest) -> Mapped:
    """The completion events of an export's GenAI spans, and how every span counted.

    Two instrumentations on one client write two spans of one call with one
    ``gen_ai.response.id``: within an export the richer copy is kept
    (``duplicate``); across exports the processor's writer drops the later one.
    """
    out = Mapped()
    by_response: dict[str, int] = {}
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                outcome, event = span_to_event(span, resource)
                out.feedback += span_evaluations(span)
                if event is None:
                    out.spans[outcome] += 1
                    continue
                response_id = event.get("response_id")
                if response_id and response_id in by_response:
                    out.spans["duplicate"] += 1
                    kept = by_response[response_id]
                    if richness(event) > richness(out.events[kept]):
                        out.events[kept] = event
                    continue
                if response_id:
                    by_response[response_id] = len(out.events)
                out.events.append(event)
    out.events = _without_nested_copies(out.events, out.spans)
    return out


def _without_nested_copies(
    events: list[dict[str, Any]], spans: Counter[str]
) -> list[dict[str, Any]]:
    """Drops an inference span nested in an inference span of the same model: one call
    that two instrumentations recorded (a failed call has no response id to tell it by).

    A model call never contains another call of the same model; an agent or a
    workflow around calls is not an inference span, so it never counts here.
    """
    by_span = {e["span_id"]: i for i, e in enumerate(events) if e.get("span_id")}
    dropped: set[int] = set()
    for i, event in enumerate(events):
        parent = by_span.get(event.get("parent_id"))
        if parent is None or parent in dropped or i in dropped:
            continue
        outer = events[parent]
        same_model = (outer.get("request_model") or outer["model"]) == (
            event.get("request_model") or event["model"]
        )
        if same_model:
            dropped.add(i if richness(outer) >= richness(event) else parent)
            spans["duplicate"] += 1
    return [e for i, e in enumerate(events) if i not in dropped]
