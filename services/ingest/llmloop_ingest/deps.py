"""Dependencies of the routes, as ``Annotated`` aliases.

All ``async def``: FastAPI runs a plain ``def`` dependency in a worker thread,
and four thread hops per request cost more than the request's own work.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from llmloop.bus import EventBus
from llmloop_ingest.metrics import IngestMetrics
from llmloop_ingest.publisher import Publisher
from llmloop_ingest.settings import IngestSettings


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
        raise HTTPException(
            status_code=401,
            detail="missing or invalid API key: send 'Authorization: Bearer <key>' "
            "(create one with `llmloop keys create --project NAME`)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return str(project)


BusDep = Annotated[EventBus, Depends(get_bus)]
SettingsDep = Annotated[IngestSettings, Depends(get_settings)]
MetricsDep = Annotated[IngestMetrics, Depends(get_metrics)]
PublisherDep = Annotated[Publisher, Depends(get_publisher)]
ProjectDep = Annotated[str, Depends(get_project)]
