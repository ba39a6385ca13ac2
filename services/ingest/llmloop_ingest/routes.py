"""HTTP routes: ``POST /v1/events``, health, readiness and metrics."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from llmloop.bus import BusError
from llmloop_ingest.bodies import BodyError, json_response, problem, read_body
from llmloop_ingest.deps import BusDep, MetricsDep, get_project
from llmloop_ingest.metrics import IngestMetrics
from llmloop_ingest.publisher import NotAcknowledged, Publisher
from llmloop_ingest.settings import IngestSettings

log = logging.getLogger(__name__)

router = APIRouter()

_BATCH_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/EventBatch"}}},
    },
    "responses": {
        "202": {"description": "Every event is durable on the bus."},
        "207": {"description": "Some events were rejected (see errors); the rest are durable."},
        "400": {"description": "The body is not gzip / JSON / {events: [...]}."},
        "401": {"description": "No or unknown API key."},
        "413": {"description": "Too many events or bytes in one request."},
        "415": {"description": "Unsupported Content-Encoding."},
        "422": {"description": "No event in the batch is valid; errors say why."},
        "503": {"description": "The bus did not acknowledge: nothing was accepted, retry."},
    },
}


@router.post(
    "/v1/events",
    status_code=202,
    summary="Send a batch of completions and feedback",
    openapi_extra=_BATCH_BODY,
)
async def post_events(request: Request) -> Response:
    """Validate each event, publish the valid ones, answer once the bus has them.

    202: all accepted. 207: some rejected (``errors`` names index, event_id,
    field and what is wrong); the rest are accepted. 422: none valid.
    503 + Retry-After: the bus did not acknowledge; none of this request was
    accepted (``not_accepted`` lists the event ids), send it again: event ids
    make a re-send harmless. The project comes from the API key.
    """
    # The hot path reads app state directly: FastAPI's dependency solving for
    # five parameters cost more than validating a small batch (bench/ingest.py).
    project = await get_project(request)
    state = request.app.state
    settings: IngestSettings = state.settings
    metrics: IngestMetrics = state.metrics
    publisher = Publisher(state.bus, settings, metrics)
    try:
        body = await read_body(request, settings.max_body_bytes)
        payload = orjson.loads(body)
    except BodyError as exc:
        metrics.rejected.labels("too_large" if exc.status == 413 else "bad_body").inc()
        return problem(exc.status, exc.message)
    except orjson.JSONDecodeError as exc:
        metrics.rejected.labels("bad_body").inc()
        return problem(400, f"body is not valid JSON: {exc}")
    raw_events = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(raw_events, list):
        metrics.rejected.labels("bad_body").inc()
        return problem(400, 'body must be a JSON object {"events": [...]}')
    if len(raw_events) > settings.max_batch_events:
        metrics.rejected.labels("too_large").inc()
        return problem(
            413,
            f"{len(raw_events)} events in one request; the limit is {settings.max_batch_events}",
        )

    checked = publisher.check(raw_events, project)
    try:
        await publisher.publish(checked.events)
    except NotAcknowledged:
        return json_response(
            {
                "error": "the event bus did not acknowledge; nothing in this request was "
                "accepted: send it again after Retry-After (event ids make that harmless)",
                "accepted": 0,
                "not_accepted": [str(e.event_id) for e in checked.events],
                "errors": checked.errors,
            },
            503,
            {"Retry-After": str(settings.retry_after_s)},
        )
    out: dict[str, Any] = {
        "accepted": len(checked.events),
        "rejected": checked.rejected,
        "errors": checked.errors,
    }
    if checked.redacted:
        out["redacted"] = dict(checked.redacted)
    status = 202 if not checked.errors else 207 if checked.events else 422
    return json_response(out, status)


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The bus answers: send traffic here")
async def readyz(bus: BusDep) -> Response:
    try:
        await asyncio.wait_for(bus.ping(), 2.0)
    except (BusError, TimeoutError) as exc:
        return problem(503, f"bus unavailable: {str(exc) or 'no answer in 2 s'}")
    return json_response({"status": "ready"}, 200)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics_endpoint(metrics: MetricsDep) -> Response:
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
