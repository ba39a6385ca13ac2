"""OTLP spans that follow the GenAI semantic conventions, mapped to completion events.

Read from a span (newest convention first, older ones as fallbacks):

* model: ``gen_ai.response.model``, else ``gen_ai.request.model``;
* tokens: ``gen_ai.usage.input_tokens`` / ``output_tokens`` (or the older
  ``prompt_tokens`` / ``completion_tokens``);
* prompt and completion: ``gen_ai.system_instructions`` + ``gen_ai.input.messages``
  and ``gen_ai.output.messages`` (JSON); span events ``gen_ai.{system,user,
  assistant,tool}.message`` and ``gen_ai.choice``; ``gen_ai.content.prompt`` /
  ``gen_ai.content.completion`` events; ``gen_ai.prompt`` / ``gen_ai.completion``
  attributes, plain or indexed (``gen_ai.prompt.0.content``);
* latency from the span's start and end; trace and parent span as ids.

A span without a model attribute is not a GenAI call and is skipped. The
event id is a UUID derived from trace and span id, so an exporter's retry
re-sends the same event and downstream dedup keeps one.
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

_NAMESPACE = uuid.UUID("6f1d2c4e-3b7a-5e9f-8a61-0c2d4e6f8a10")
_ROLES = {"system", "user", "assistant", "tool", "developer"}
_ROLE_ALIASES = {"model": "assistant", "ai": "assistant", "human": "user", "function": "tool"}
_ID_FIELDS = ("traceId", "spanId", "parentSpanId")
# Message content is a string, a list of parts or a part: a few levels. Deeper
# nesting is not a chat message, and following it overflowed the stack (a 500).
_MAX_CONTENT_DEPTH = 32


class OtlpError(ValueError):
    """The body is not an OTLP trace export request."""


def parse_request(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    """Decode an OTLP/HTTP trace export: protobuf, or JSON with hex ids (per the OTLP spec)."""
    request = ExportTraceServiceRequest()
    if content_type.startswith("application/json"):
        try:
            data = orjson.loads(body)
            _hex_ids_to_base64(data)
            json_format.ParseDict(data, request, ignore_unknown_fields=True)
        except (orjson.JSONDecodeError, json_format.ParseError, ValueError, TypeError) as exc:
            raise OtlpError(f"body is not an OTLP/JSON trace export: {exc}") from None
        return request
    if content_type.startswith("application/x-protobuf") or not content_type:
        try:
            request.ParseFromString(body)
        except Exception as exc:  # protobuf raises its own DecodeError, not exported uniformly
            raise OtlpError(f"body is not an OTLP/protobuf trace export: {exc}") from None
        return request
    raise OtlpError(
        f"Content-Type {content_type!r}: send application/x-protobuf or application/json"
    )


def _hex_ids_to_base64(data: Any) -> None:
    """OTLP/JSON writes ids as hex; protobuf's JSON mapping expects base64 for bytes."""
    if not isinstance(data, dict):
        raise TypeError("expected a JSON object")
    for resource_spans in _objects(data, "resourceSpans"):
        for scope_spans in _objects(resource_spans, "scopeSpans"):
            for span in _objects(scope_spans, "spans"):
                for item in [span, *_objects(span, "links")]:
                    for name in _ID_FIELDS:
                        value = item.get(name)
                        if isinstance(value, str) and value:
                            item[name] = base64.b64encode(bytes.fromhex(value)).decode()


def _objects(node: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The JSON objects in the list ``node[name]``.

    Anything of another type is skipped here and left for ``ParseDict`` to name
    in a 400 (``{"resourceSpans": "x"}`` used to raise AttributeError: a 500).
    """
    value = node.get(name)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind) if kind else None


def _attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in kvs if isinstance(kv, KeyValue)}


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _text(content: Any, depth: int = 0) -> str:
    """Text of a message's content: a string, a list of parts, or a dict with content/text."""
    if depth > _MAX_CONTENT_DEPTH:
        return ""
    content = _json(content)
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(t for part in content if (t := _text(part, depth + 1)))
    if isinstance(content, dict):
        for name in ("content", "text", "parts", "message"):
            if name in content:
                return _text(content[name], depth + 1)
    return "" if content is None else str(content)


def _message(role: Any, content: Any) -> dict[str, str]:
    role = str(role or "user").lower()
    role = _ROLE_ALIASES.get(role, role)
    return {"role": role if role in _ROLES else "user", "content": _text(content)}


def _messages(value: Any) -> list[dict[str, str]]:
    value = _json(value)
    if isinstance(value, list):
        return [
            _message(m.get("role"), m.get("parts", m.get("content")))
            if isinstance(m, dict)
            else _message("user", m)
            for m in value
        ]
    if value in (None, ""):
        return []
    return [_message("user", value)]


def _indexed(attrs: dict[str, Any], prefix: str) -> list[dict[str, str]]:
    """OpenLLMetry-style ``gen_ai.prompt.0.role`` / ``gen_ai.prompt.0.content``."""
    out = []
    i = 0
    while f"{prefix}.{i}.content" in attrs or f"{prefix}.{i}.role" in attrs:
        out.append(_message(attrs.get(f"{prefix}.{i}.role"), attrs.get(f"{prefix}.{i}.content")))
        i += 1
    return out


def _conversation(span: Span, attrs: dict[str, Any]) -> tuple[list[dict[str, str]], str]:
    prompt: list[dict[str, str]] = []
    completion: list[str] = []
    if "gen_ai.system_instructions" in attrs:
        prompt.append(_message("system", attrs["gen_ai.system_instructions"]))
    prompt += _messages(attrs.get("gen_ai.input.messages"))
    completion += [m["content"] for m in _messages(attrs.get("gen_ai.output.messages"))]
    for event in span.events:
        body = _attrs(event.attributes)
        name = event.name
        if name.startswith("gen_ai.") and name.endswith(".message"):
            role = body.get("role") or name.removeprefix("gen_ai.").removesuffix(".message")
            prompt.append(_message(role, body.get("content", body.get("message"))))
        elif name == "gen_ai.choice":
            completion.append(_text(body.get("message", body.get("content"))))
        elif name == "gen_ai.content.prompt":
            prompt += _messages(body.get("gen_ai.prompt"))
        elif name == "gen_ai.content.completion":
            completion += [m["content"] for m in _messages(body.get("gen_ai.completion"))]
    if not prompt:
        prompt = _indexed(attrs, "gen_ai.prompt") or _messages(attrs.get("gen_ai.prompt"))
    if not completion:
        completion = [m["content"] for m in _indexed(attrs, "gen_ai.completion")] or [
            m["content"] for m in _messages(attrs.get("gen_ai.completion"))
        ]
    return prompt, "\n".join(completion)


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError, OverflowError):  # OverflowError: a double attribute = inf
        return None


def span_to_event(span: Span, resource: dict[str, Any]) -> dict[str, Any] | None:
    """The completion event dict for a GenAI span, or None when it is not one."""
    attrs = _attrs(span.attributes)
    model = attrs.get("gen_ai.response.model") or attrs.get("gen_ai.request.model")
    if not model:
        return None
    prompt, completion = _conversation(span, attrs)
    trace_id, span_id = span.trace_id.hex(), span.span_id.hex()
    event: dict[str, Any] = {
        "type": "completion",
        "event_id": str(uuid.uuid5(_NAMESPACE, f"{trace_id}/{span_id}")),
        "model": str(model),
        "prompt": prompt
        if len(prompt) > 1 or (prompt and prompt[0]["role"] != "user")
        else (prompt[0]["content"] if prompt else ""),
        "completion": completion,
        "trace_id": trace_id or None,
        "parent_id": span.parent_span_id.hex() or None,
    }
    if span.start_time_unix_nano:
        event["timestamp"] = datetime.fromtimestamp(span.start_time_unix_nano / 1e9, UTC)
        if span.end_time_unix_nano >= span.start_time_unix_nano:
            event["latency_ms"] = (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6
    tokens_in = _int(
        attrs.get("gen_ai.usage.input_tokens", attrs.get("gen_ai.usage.prompt_tokens"))
    )
    tokens_out = _int(
        attrs.get("gen_ai.usage.output_tokens", attrs.get("gen_ai.usage.completion_tokens"))
    )
    if tokens_in is not None:
        event["prompt_tokens"] = tokens_in
    if tokens_out is not None:
        event["completion_tokens"] = tokens_out
    user = attrs.get("user.id") or attrs.get("enduser.id")
    session = attrs.get("session.id") or attrs.get("gen_ai.conversation.id")
    if user:
        event["user_id"] = str(user)
    if session:
        event["session_id"] = str(session)
    labels = {
        "service": resource.get("service.name"),
        "provider": attrs.get("gen_ai.provider.name") or attrs.get("gen_ai.system"),
        "operation": attrs.get("gen_ai.operation.name"),
    }
    event["attributes"] = {k: str(v) for k, v in labels.items() if v}
    event["tags"] = ["otlp"]
    return event


def request_to_events(request: ExportTraceServiceRequest) -> tuple[list[dict[str, Any]], int]:
    """Completion event dicts for the GenAI spans of ``request``, and how many spans it had."""
    events, spans = [], 0
    for resource_spans in request.resource_spans:
        resource = _attrs(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans += 1
                event = span_to_event(span, resource)
                if event is not None:
                    events.append(event)
    return events, spans
