"""OTLP/HTTP export requests (traces, logs, metrics), protobuf or JSON, decoded.

The mapping of GenAI spans and log records to llmloop events lives beside this
(``spans``, ``otlp_logs``, ``evaluations``); here are the wire details they
share: the OTLP/JSON id encoding, attribute values, and the id of the completion
a span stands for.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any, TypeVar

import orjson
from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

NAMESPACE = uuid.UUID("6f1d2c4e-3b7a-5e9f-8a61-0c2d4e6f8a10")
_ID_FIELDS = frozenset({"traceId", "spanId", "parentSpanId"})
# Attribute values nest (kvlist in array in kvlist ...); a message is a few levels.
# Deeper values are cut, not followed: following them overflowed the stack (a 500).
_MAX_VALUE_DEPTH = 32

M = TypeVar("M", bound=Message)


class OtlpError(ValueError):
    """The body is not the OTLP export request the route takes; ``status`` is the answer's
    (400 for a body that does not parse, 415 for a media type OTLP/HTTP does not have)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def parse_request(body: bytes, content_type: str, request: M, what: str) -> M:
    """Decode an OTLP/HTTP export into ``request``: protobuf, or JSON with hex ids (the spec)."""
    if content_type.startswith("application/json"):
        try:
            data = orjson.loads(body)
            if not isinstance(data, dict):
                raise TypeError("expected a JSON object")
            _hex_ids_to_base64(data)
            json_format.ParseDict(data, request, ignore_unknown_fields=True)
        except (orjson.JSONDecodeError, json_format.ParseError, ValueError, TypeError) as exc:
            raise OtlpError(f"body is not an OTLP/JSON {what} export: {exc}") from None
        return request
    if content_type.startswith("application/x-protobuf") or not content_type:
        try:
            request.ParseFromString(body)
        except Exception as exc:  # protobuf raises its own DecodeError, not exported uniformly
            raise OtlpError(f"body is not an OTLP/protobuf {what} export: {exc}") from None
        return request
    raise OtlpError(
        f"Content-Type {content_type!r}: send application/x-protobuf or application/json", 415
    )


def _hex_ids_to_base64(data: dict[str, Any]) -> None:
    """OTLP/JSON writes ids as hex; protobuf's JSON mapping expects base64 for bytes.

    Walks every object (spans, links, log records, exemplars) without recursion;
    values of another type are left for ``ParseDict`` to name in a 400.
    """
    stack: list[Any] = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str) and value:
                node[key] = base64.b64encode(bytes.fromhex(value)).decode()
            elif isinstance(value, dict | list) and key != "attributes":
                stack.append(value)


def value(v: AnyValue, depth: int = 0) -> Any:
    """An attribute value as Python: kvlists are dicts, bytes are base64 text."""
    kind = v.WhichOneof("value")
    if depth > _MAX_VALUE_DEPTH:
        return None
    if kind == "array_value":
        return [value(x, depth + 1) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value(kv.value, depth + 1) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return getattr(v, kind) if kind else None


def attributes(kvs: Any) -> dict[str, Any]:
    """OTLP key-values as a dict (the last of repeated keys wins)."""
    return {kv.key: value(kv.value) for kv in kvs if isinstance(kv, KeyValue)}


def completion_id(trace_id: str, span_id: str) -> uuid.UUID:
    """The completion event id of a span: its retries and its log records share it."""
    return uuid.uuid5(NAMESPACE, f"{trace_id}/{span_id}")
