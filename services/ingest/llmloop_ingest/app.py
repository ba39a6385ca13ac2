"""``create_app``: the ingest API. Adapters open in the lifespan, never at import."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.routing import Route

from llmloop import __version__
from llmloop.bus import EventBus, open_bus
from llmloop.events import IngestEvent, error_field
from llmloop.settings import Settings
from llmloop.urls import redact_url
from llmloop_ingest.auth import Authenticator, authenticator_from
from llmloop_ingest.bodies import problem
from llmloop_ingest.metrics import IngestMetrics, MetricsMiddleware
from llmloop_ingest.otlp_routes import router as otlp_router
from llmloop_ingest.otlp_routes import status_answer, wants_json
from llmloop_ingest.routes import post_events, router
from llmloop_ingest.settings import IngestSettings, ingest_settings

log = logging.getLogger(__name__)


class EventBatch(BaseModel):
    """The body of ``POST /v1/events`` (documentation only: events are validated one by one)."""

    events: list[IngestEvent] = Field(max_length=1_000)


def create_app(
    settings: Settings | None = None,
    *,
    bus: EventBus | None = None,
    authenticator: Authenticator | None = None,
) -> FastAPI:
    """Build the ingest API.

    Pass ``bus`` to share one that the caller owns (the embedded runtime);
    otherwise the app opens ``settings.bus_url`` at start and closes it at stop.
    Without ``authenticator``, requests need an API key from the key store
    (``IngestSettings.keys_db`` / ``keys_file``) unless ``LLMLOOP_AUTH=none``.
    """
    config = ingest_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info(
            "ingest: bus %s, auth %s, PII redaction for %s, publish timeout %.1f s",
            redact_url(bus.url if bus is not None else config.bus_url),
            _describe_auth(config, authenticator),
            config.redact_pii or "no project",
            config.publish_timeout_s,
        )
        if bus is not None:
            yield  # the caller started it and will close it
            return
        app.state.bus = open_bus(config.bus_url)
        await app.state.bus.start()
        try:
            yield
        finally:
            await app.state.bus.close()

    app = FastAPI(
        title="llmloop ingest",
        version=__version__,
        description="Send completions and feedback from your app. Authenticate with "
        "'Authorization: Bearer <key>' (`llmloop keys create --project NAME`).",
        lifespan=lifespan,
        # FastAPI's own docs pages load Swagger UI / ReDoc from a CDN: blank offline.
        docs_url=None,
        redoc_url=None,
    )
    _offline_docs(app)
    metrics = IngestMetrics()
    app.state.settings = config
    app.state.bus = bus
    app.state.metrics = metrics
    app.state.authenticator = authenticator or authenticator_from(config)
    # POST /v1/events is served by a plain Starlette route placed first, so requests
    # skip FastAPI's per-request machinery (~25% of a small request's CPU, measured
    # with bench/ingest.py --profile); the FastAPI route behind it documents it in
    # the OpenAPI spec and is never reached.
    app.router.routes.append(Route("/v1/events", post_events, methods=["POST"]))
    app.include_router(router)
    app.include_router(otlp_router)
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if request.url.path.startswith("/v1/otlp/"):  # OTLP exporters read a google.rpc.Status
            return status_answer(
                exc.status_code, str(exc.detail), wants_json(request), dict(exc.headers or {})
            )
        return problem(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    async def invalid_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        return problem(422, f"{error_field(first)}: {first.get('msg', 'invalid request')}")

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


STATIC_DIR = Path(__file__).parent / "static"  # Swagger UI, vendored (scripts/vendor-console.sh)


def _offline_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI from the package, so the page works with no internet."""
    app.mount("/static/api-docs", StaticFiles(directory=STATIC_DIR), name="api-docs-static")

    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API docs",
            swagger_js_url="/static/api-docs/swagger-ui-bundle.js",
            swagger_css_url="/static/api-docs/swagger-ui.css",
            swagger_favicon_url="data:,",
        )

    app.add_api_route("/docs", docs, include_in_schema=False)


def _describe_auth(config: IngestSettings, authenticator: Authenticator | None) -> str:
    if authenticator is not None:
        return type(authenticator).__name__
    if config.auth == "none":
        return "off (every request is project 'default')"
    if config.keys_file:
        return f"by API keys in {config.keys_file}"
    return f"by API keys in {config.keys_path()} (llmloop keys create --project NAME)"


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema plus the event models, which routes read by hand for per-event errors."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    batch = EventBatch.model_json_schema(ref_template="#/components/schemas/{model}")
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(batch.pop("$defs", {}))
    components["EventBatch"] = batch
    _valid_discriminators(schema)
    app.openapi_schema = schema
    return schema


def _valid_discriminators(node: Any) -> None:
    """Drop discriminator mappings to inline schemas (pydantic's nested unions make them).

    OpenAPI allows only references there; ``oneOf`` still lists every variant.
    """
    if isinstance(node, dict):
        discriminator = node.get("discriminator")
        mapping = discriminator.get("mapping") if isinstance(discriminator, dict) else None
        if isinstance(mapping, dict) and not all(isinstance(v, str) for v in mapping.values()):
            del node["discriminator"]
        for value in node.values():
            _valid_discriminators(value)
    elif isinstance(node, list):
        for value in node:
            _valid_discriminators(value)
