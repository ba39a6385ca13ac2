"""``POST /v1/otlp/v1/{traces,logs,metrics}``: OTLP/HTTP exports (protobuf or JSON).

Point an OpenTelemetry exporter at ``<ingest>/v1/otlp`` (it appends
``/v1/traces``, ``/v1/logs``, ``/v1/metrics``) with the header
``Authorization=Bearer <key>``. Answers follow the OTLP/HTTP specification:
200 with ``partial_success`` naming what was refused, and on an error a
``google.rpc.Status`` body in the request's encoding (protobuf or JSON), so
exporters can log why. Every refused span or record is counted in
``llmloop_ingest_otlp_items`` and logged at INFO with its reason.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from llmloop_ingest.bodies import BodyError, read_body
from llmloop_ingest.deps import MetricsDep, ProjectDep, PublisherDep, SettingsDep
from llmloop_ingest.metrics import IngestMetrics
from llmloop_ingest.otlp import OtlpError, parse_request
from llmloop_ingest.otlp_logs import logs_to_events
from llmloop_ingest.publisher import NotAcknowledged, Publisher
from llmloop_ingest.settings import IngestSettings
from llmloop_ingest.spans import request_to_events

log = logging.getLogger(__name__)

router = APIRouter()

# HTTP status -> the gRPC code of the google.rpc.Status body.
_CODES = {
    400: code_pb2.INVALID_ARGUMENT,
    401: code_pb2.UNAUTHENTICATED,
    403: code_pb2.PERMISSION_DENIED,
    413: code_pb2.RESOURCE_EXHAUSTED,
    415: code_pb2.INVALID_ARGUMENT,
    422: code_pb2.INVALID_ARGUMENT,
    503: code_pb2.UNAVAILABLE,
}
_LOGGED_PER_REQUEST = 20  # refused items logged one by one; the rest in the summary line


def _doc(what: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
                "application/json": {"schema": {"type": "object"}},
            },
        },
        "responses": {
            "200": {"description": f"Export{what}ServiceResponse; partial_success counts rejects."},
            "400": {"description": "Not an OTLP export (google.rpc.Status body)."},
            "401": {"description": "No or unknown API key."},
            "413": {"description": "Body over the limit (google.rpc.Status body)."},
            "503": {"description": "The bus did not acknowledge; the exporter retries."},
        },
    }


def wants_json(request: Request) -> bool:
    return request.headers.get("content-type", "").lower().startswith("application/json")


def status_answer(
    status: int, message: str, as_json: bool, headers: dict[str, str] | None = None
) -> Response:
    """An OTLP error answer: a ``google.rpc.Status`` in the request's encoding."""
    body = status_pb2.Status(code=_CODES.get(status, code_pb2.UNKNOWN), message=message)
    if as_json:
        text = json_format.MessageToJson(body, indent=None).encode()
        return Response(text, status, headers, media_type="application/json")
    return Response(body.SerializeToString(), status, headers, media_type="application/x-protobuf")


def _answer(response: Message, as_json: bool) -> Response:
    if as_json:
        body = json_format.MessageToJson(response, indent=None).encode()
        return Response(body, 200, media_type="application/json")
    return Response(response.SerializeToString(), 200, media_type="application/x-protobuf")


async def _read(
    request: Request, settings: IngestSettings, metrics: IngestMetrics, message: Message, what: str
) -> Message | Response:
    try:
        body = await read_body(request, settings.otlp_max_body_bytes)
        return parse_request(body, request.headers.get("content-type", "").lower(), message, what)
    except BodyError as exc:
        metrics.rejected.labels("too_large" if exc.status == 413 else "bad_body").inc()
        log.info("otlp %s: refused the whole export (%d): %s", what, exc.status, exc.message)
        return status_answer(exc.status, exc.message, wants_json(request))
    except OtlpError as exc:
        metrics.rejected.labels("bad_body").inc()
        log.info("otlp %s: refused the whole export: %s", what, exc)
        return status_answer(exc.status, str(exc), wants_json(request))


async def _publish(
    raw: list[dict[str, Any]],
    project: str,
    publisher: Publisher,
    settings: IngestSettings,
    metrics: IngestMetrics,
    signal: str,
    counts: Counter[str],
    as_json: bool,
) -> tuple[int, str] | Response:
    """Validate and publish; the number refused and the first reason, or the 503 answer."""
    checked = publisher.check(raw, project)
    try:
        await publisher.publish(checked.events)
    except NotAcknowledged:
        return status_answer(
            503,
            "the event bus did not acknowledge; nothing was accepted, retry",
            as_json,
            {"Retry-After": str(settings.retry_after_s)},
        )
    refused = {e["index"] for e in checked.errors}
    for n, error in enumerate(checked.errors[:_LOGGED_PER_REQUEST]):
        item = raw[error["index"]]
        log.info(
            "otlp %s: refused %s (span %s): %s: %s",
            signal,
            item.get("type"),
            item.get("span_id") or item.get("metadata", {}).get("otel.span_id"),
            error["field"],
            error["message"],
            extra={"refused": n},
        )
    counts["accepted"] += len(raw) - len(refused)
    counts["invalid"] += len(refused)
    for outcome, n in counts.items():
        metrics.otlp_items.labels(signal, outcome).inc(n)
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if v)
    # INFO when something was refused (every refusal is one a user must hear about);
    # an export that went through is DEBUG: exporters without batching send one per span.
    level = logging.INFO if counts["invalid"] or counts["unjoinable"] else logging.DEBUG
    log.log(level, "otlp %s: %s", signal, summary)
    if not checked.errors:
        return 0, ""
    first = checked.errors[0]
    return len(refused), f"{raw[first['index']].get('type')} {first['index']}: " + (
        f"{first['field']}: {first['message']}"
    )


@router.post(
    "/v1/otlp/v1/traces",
    summary="OTLP/HTTP traces (GenAI semantic conventions) as completions",
    openapi_extra=_doc("Trace"),
)
async def post_traces(
    request: Request,
    project: ProjectDep,
    settings: SettingsDep,
    publisher: PublisherDep,
    metrics: MetricsDep,
) -> Response:
    """Inference spans become completions; evaluation span events become judge feedback.

    Agent, tool, embeddings and other GenAI spans are counted as trace context;
    spans that map to an invalid event are counted in
    ``partial_success.rejected_spans`` with the first reason.
    """
    export = await _read(request, settings, metrics, ExportTraceServiceRequest(), "trace")
    if isinstance(export, Response):
        return export
    assert isinstance(export, ExportTraceServiceRequest)
    mapped = request_to_events(export)
    result = await _publish(
        mapped.events + mapped.feedback,
        project,
        publisher,
        settings,
        metrics,
        "traces",
        mapped.spans,
        wants_json(request),
    )
    if isinstance(result, Response):
        return result
    response = ExportTraceServiceResponse()
    if result[0]:
        response.partial_success.rejected_spans = result[0]
        response.partial_success.error_message = result[1]
    return _answer(response, wants_json(request))


@router.post(
    "/v1/otlp/v1/logs",
    summary="OTLP/HTTP logs: GenAI content events and evaluation results",
    openapi_extra=_doc("Logs"),
)
async def post_logs(
    request: Request,
    project: ProjectDep,
    settings: SettingsDep,
    publisher: PublisherDep,
    metrics: MetricsDep,
) -> Response:
    """Content events join their span's completion (by trace and span id); evaluations
    become judge feedback. Other log records are acknowledged and counted, not stored."""
    export = await _read(request, settings, metrics, ExportLogsServiceRequest(), "logs")
    if isinstance(export, Response):
        return export
    assert isinstance(export, ExportLogsServiceRequest)
    events, counts = logs_to_events(export)
    result = await _publish(
        events, project, publisher, settings, metrics, "logs", counts, wants_json(request)
    )
    if isinstance(result, Response):
        return result
    response = ExportLogsServiceResponse()
    refused = result[0] + counts["unjoinable"]
    if refused:
        response.partial_success.rejected_log_records = refused
        response.partial_success.error_message = result[1] or (
            "a GenAI content or evaluation record without a span id cannot be joined"
        )
    return _answer(response, wants_json(request))


@router.post(
    "/v1/otlp/v1/metrics",
    summary="OTLP/HTTP metrics: acknowledged (counted), not stored",
    openapi_extra=_doc("Metrics"),
)
async def post_metrics(
    request: Request, project: ProjectDep, settings: SettingsDep, metrics: MetricsDep
) -> Response:
    """GenAI client metrics (``gen_ai.client.token.usage``, ``operation.duration``) duplicate
    what the spans carry; they are read, counted and acknowledged so exporters stop failing."""
    export = await _read(request, settings, metrics, ExportMetricsServiceRequest(), "metrics")
    if isinstance(export, Response):
        return export
    assert isinstance(export, ExportMetricsServiceRequest)
    points = 0
    for resource_metrics in export.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                points += len(getattr(metric, kind).data_points) if kind else 0
    metrics.otlp_items.labels("metrics", "acknowledged").inc(points)
    log.debug("otlp metrics: %d data points acknowledged for %s", points, project)
    return _answer(ExportMetricsServiceResponse(), wants_json(request))
