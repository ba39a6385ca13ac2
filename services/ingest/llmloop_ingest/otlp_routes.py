"""``POST /v1/otlp/v1/traces``: OTLP/HTTP trace exports (protobuf or JSON) as completions.

Point an OpenTelemetry exporter at ``<ingest>/v1/otlp`` (it appends
``/v1/traces``) with the header ``Authorization=Bearer <key>``.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import Response
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from llmloop_ingest.bodies import BodyError, problem, read_body
from llmloop_ingest.deps import MetricsDep, ProjectDep, PublisherDep, SettingsDep
from llmloop_ingest.otlp import OtlpError, parse_request, request_to_events
from llmloop_ingest.publisher import NotAcknowledged

log = logging.getLogger(__name__)

router = APIRouter()

_OTLP_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": {"type": "object"}},
        },
    },
    "responses": {
        "200": {"description": "ExportTraceServiceResponse; partial_success counts rejects."},
        "400": {"description": "Not an OTLP trace export."},
        "401": {"description": "No or unknown API key."},
        "503": {"description": "The bus did not acknowledge; the exporter retries."},
    },
}


def _answer(response: ExportTraceServiceResponse, as_json: bool) -> Response:
    if as_json:
        body = json_format.MessageToJson(response, indent=None).encode()
        return Response(body, 200, media_type="application/json")
    return Response(response.SerializeToString(), 200, media_type="application/x-protobuf")


@router.post(
    "/v1/otlp/v1/traces",
    summary="OTLP/HTTP traces (GenAI semantic conventions) as completions",
    openapi_extra=_OTLP_BODY,
)
async def post_traces(
    request: Request,
    project: ProjectDep,
    settings: SettingsDep,
    publisher: PublisherDep,
    metrics: MetricsDep,
) -> Response:
    """Map every span with ``gen_ai.request.model`` / ``gen_ai.response.model`` to a completion.

    Other spans are ignored. Spans that map to an invalid completion are
    counted in ``partial_success.rejected_spans`` with the first reason.
    """
    content_type = request.headers.get("content-type", "").lower()
    try:
        body = await read_body(request, settings.max_body_bytes)
        export = parse_request(body, content_type)
    except BodyError as exc:
        metrics.rejected.labels("too_large" if exc.status == 413 else "bad_body").inc()
        return problem(exc.status, exc.message)
    except OtlpError as exc:
        metrics.rejected.labels("bad_body").inc()
        return problem(415 if "Content-Type" in str(exc) else 400, str(exc))
    raw_events, spans = request_to_events(export)
    if len(raw_events) > settings.max_batch_events:
        metrics.rejected.labels("too_large").inc()
        return problem(
            413, f"{len(raw_events)} GenAI spans; the limit is {settings.max_batch_events}"
        )
    checked = publisher.check(raw_events, project)
    try:
        await publisher.publish(checked.events)
    except NotAcknowledged:
        return problem(
            503,
            "the event bus did not acknowledge; nothing was accepted, retry",
            {"Retry-After": str(settings.retry_after_s)},
        )
    log.debug("otlp: %d spans, %d GenAI, %d accepted", spans, len(raw_events), len(checked.events))
    response = ExportTraceServiceResponse()
    if checked.errors:
        first = checked.errors[0]
        response.partial_success.rejected_spans = checked.rejected
        response.partial_success.error_message = (
            f"span {first['index']} of the GenAI spans: {first['field']}: {first['message']}"
        )
    return _answer(response, content_type.startswith("application/json"))
