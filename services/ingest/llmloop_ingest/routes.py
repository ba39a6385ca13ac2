"""HTTP routes: ``POST /v1/events``, health and readiness."""

from __future__ import annotations

import asyncio
import logging
import zlib
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from llmloop import topics
from llmloop.bus import BusError, Record
from llmloop.events import encode_event, error_field, ingest_adapter
from llmloop_ingest.deps import BusDep, ProjectDep, SettingsDep

log = logging.getLogger(__name__)

router = APIRouter()


def _errors(index: int, raw: Any, exc: ValidationError) -> list[dict[str, Any]]:
    event_id = raw.get("event_id") if isinstance(raw, dict) else None
    return [
        {
            "index": index,
            "event_id": event_id if isinstance(event_id, str) else None,
            "field": error_field(err),
            "message": err["msg"],
        }
        for err in exc.errors(include_url=False)
    ]


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None once it is past ``limit``: never buffer more than that."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _gunzip(body: bytes, limit: int) -> bytes:
    """Inflate at most ``limit + 1`` bytes, so a gzip bomb costs nothing."""
    inflater = zlib.decompressobj(wbits=31)
    out = inflater.decompress(body, limit + 1)
    if not inflater.eof and len(out) <= limit:
        raise zlib.error("truncated gzip stream")
    return out


def _json(body: Any, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def _problem(status: int, message: str) -> Response:
    return _json({"error": message}, status)


@router.post("/v1/events", status_code=202, summary="Send a batch of completions and feedback")
async def post_events(
    request: Request, bus: BusDep, project: ProjectDep, settings: SettingsDep
) -> Response:
    """Validate each event, publish the valid ones, answer once the bus has them.

    202: all accepted. 207: some rejected (``errors`` names index and field);
    the rest are accepted. 422: none valid. 503: the bus did not acknowledge;
    none of this request was accepted, send it again (event ids make it safe).
    """
    limit = settings.max_body_bytes
    body = await _read_body(request, limit)
    if body is None:
        return _problem(413, f"body is larger than {limit} bytes; send smaller batches")
    if request.headers.get("content-encoding", "").lower() == "gzip":
        try:
            body = _gunzip(body, limit)
        except (OSError, EOFError, zlib.error):
            return _problem(400, "body is not valid gzip")
    if len(body) > limit:
        return _problem(413, f"body is larger than {limit} bytes; send smaller batches")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return _problem(400, f"body is not valid JSON: {exc}")
    raw_events = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(raw_events, list):
        return _problem(400, 'body must be a JSON object {"events": [...]}')
    if len(raw_events) > settings.max_batch_events:
        return _problem(
            413,
            f"{len(raw_events)} events in one request; the limit is {settings.max_batch_events}",
        )

    records: list[Record] = []
    errors: list[dict[str, Any]] = []
    for index, raw in enumerate(raw_events):
        if not isinstance(raw, dict) or "event_id" not in raw:
            errors.append(
                {
                    "index": index,
                    "event_id": None,
                    "field": "event_id" if isinstance(raw, dict) else "(event)",
                    "message": "event_id is required: a UUID the client makes, so that a retry "
                    "never counts twice"
                    if isinstance(raw, dict)
                    else "an event must be a JSON object",
                }
            )
            continue
        try:
            # The project comes from the key; whatever the body says is overwritten.
            event = ingest_adapter.validate_python({**raw, "project_id": project})
        except ValidationError as exc:
            errors.extend(_errors(index, raw, exc))
            continue
        records.append(Record(key=event.key(), value=encode_event(event)))

    if records:
        try:
            await asyncio.wait_for(bus.publish(topics.EVENTS, records), settings.publish_timeout_s)
        except (BusError, TimeoutError) as exc:
            log.warning("bus did not acknowledge %d events: %s", len(records), exc)
            return _json(
                {
                    "error": "the event bus is unavailable; nothing in this request was accepted",
                    "accepted": 0,
                    "errors": errors,
                },
                503,
                {"Retry-After": "5"},
            )
    rejected = len({e["index"] for e in errors})
    body_out = {"accepted": len(records), "rejected": rejected, "errors": errors}
    return _json(body_out, 202 if not errors else 207 if records else 422)


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The bus answers")
async def readyz(bus: BusDep) -> Response:
    try:
        await asyncio.wait_for(bus.ping(), 2.0)
    except (BusError, TimeoutError) as exc:
        return _problem(503, f"bus unavailable: {exc}")
    return _json({"status": "ready"}, 200)
