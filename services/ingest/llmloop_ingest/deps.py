"""Dependencies of the routes, as ``Annotated`` aliases.

All ``async def``: FastAPI runs a plain ``def`` dependency in a worker thread,
and four thread hops per request cost more than the request's own work.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from llmloop.bus import EventBus
from llmloop_ingest.auth import presented_key
from llmloop_ingest.keys import hash_key
from llmloop_ingest.metrics import IngestMetrics
from llmloop_ingest.publisher import Publisher
from llmloop_ingest.settings import IngestSettings

log = logging.getLogger(__name__)


async def get_bus(request: Request) -> EventBus:
    bus: EventBus = request.app.state.bus
    return bus


async def get_settings(request: Request) -> IngestSettings:
    settings: IngestSettings = request.app.state.settings
    return settings


async def get_metrics(request: Request) -> IngestMetrics:
    metrics: IngestMetrics = request.app.state.metrics
    return metrics


async def get_publisher(request: Request) -> Publisher:
    return Publisher(request.app.state.bus, request.app.state.settings, request.app.state.metrics)


async def get_project(request: Request) -> str:
    """The caller's project, or a 401 that says how to get a key."""
    project = await request.app.state.authenticator.project_for(request)
    if project is None:
        request.app.state.metrics.rejected.labels("unauthorized").inc()
        if log.isEnabledFor(logging.DEBUG):
            client = request.client.host if request.client else "?"
            log.debug(
                "401 for %s %s from %s: %s", request.method, request.url.path, client, _why(request)
            )
        raise HTTPException(
            status_code=401,
            detail="missing or invalid API key: send 'Authorization: Bearer <key>' "
            "(create one with `llmloop keys create --project NAME`)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return str(project)


def _why(request: Request) -> str:
    """Why a request is not authenticated, naming a key only by its id (``keys list``)."""
    key = presented_key(request)
    if key is None:
        scheme = request.headers.get("authorization", "").partition(" ")[0]
        return f"no bearer key (Authorization scheme {scheme!r})" if scheme else "no API key"
    if len(key) > 200:
        return f"a key of {len(key)} characters (too long to be one)"
    return f"key id {hash_key(key)[:12]} is unknown or revoked"


BusDep = Annotated[EventBus, Depends(get_bus)]
SettingsDep = Annotated[IngestSettings, Depends(get_settings)]
MetricsDep = Annotated[IngestMetrics, Depends(get_metrics)]
PublisherDep = Annotated[Publisher, Depends(get_publisher)]
ProjectDep = Annotated[str, Depends(get_project)]
