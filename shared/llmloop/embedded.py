"""The embedded runtime of ``llmloop up``: every service in one process.

The HTTP API (ingest) publishes to the durable local log; the processor reads
it and writes chDB. The same services and the same bus and store ports as the
distributed runtime, wired in one asyncio loop. ``--broker`` / ``--store``
swap the adapters for Kafka and a ClickHouse server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import socket
from typing import Any, Protocol

import uvicorn
from fastapi import APIRouter, FastAPI, Header, HTTPException
from fastapi.responses import Response
from pydantic import BaseModel, Field

from llmloop.bus import EventBus, open_bus
from llmloop.console_wiring import IngestSink, LocalOperations
from llmloop.demo import run_demo
from llmloop.lifecycle import stop_on_signals
from llmloop.runtime_file import TOKEN_HEADER, RuntimeInfo
from llmloop.settings import Settings
from llmloop.store import Store, StoreError, open_store
from llmloop.store.migrate import migrate
from llmloop_alerting.rules import load_rules
from llmloop_alerting.runtime import services as alerting_services
from llmloop_console.app import install as install_console
from llmloop_console.tokens import ConsoleTokens, ensure_local_token, tokens_path
from llmloop_ingest.app import create_app
from llmloop_ingest.keys import ensure_local_key
from llmloop_ingest.settings import ingest_settings
from llmloop_processor.lag import LagGauges
from llmloop_processor.runtime import services as processor_services
from llmloop_retraining.runtime import services as retraining_services

log = logging.getLogger(__name__)


class LocalQuery(BaseModel):
    sql: str = Field(min_length=1, max_length=100_000)
    format: str = Field(default="TabSeparated", pattern=r"^[A-Za-z0-9]+$")
    params: dict[str, Any] = Field(default_factory=dict)


def local_router(store: Store, token: str) -> APIRouter:
    """``POST /_local/query``: SQL from ``llmloop query`` on this machine, to the store we own."""
    router = APIRouter(include_in_schema=False)

    @router.post("/_local/query")
    async def query(
        body: LocalQuery, token_header: str = Header(default="", alias=TOKEN_HEADER)
    ) -> Response:
        if not hmac.compare_digest(token_header.encode(), token.encode()):
            raise HTTPException(status_code=401, detail="wrong local token")
        try:
            out = await asyncio.to_thread(store.query_raw, body.sql, body.format, body.params)
        except StoreError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc
        return Response(out, media_type="application/octet-stream")

    return router


def add_console(app: FastAPI, settings: Settings, store: Store, bus: EventBus) -> str:
    """The console at ``/`` beside the API; returns the local user's sign-in token.

    Its judgments go through this process's ingest path, with the ingest app's
    settings and metrics, onto the same bus as the SDK's events.
    """
    rules = load_rules(env={}).rules
    install_console(
        app,
        store,
        ConsoleTokens(tokens_path(settings.data_dir)),
        thresholds={rule.name: rule.threshold for rule in rules},
        rule_metrics={rule.name: rule.metric for rule in rules},
        sink=IngestSink(bus, app.state.settings, app.state.metrics),
        operations=LocalOperations(settings, bus),
    )
    return ensure_local_token(settings.data_dir)


class PortInUse(RuntimeError):
    """The API's address is taken (another ``llmloop up``, or another program)."""


def listen(host: str, port: int) -> socket.socket:
    """The API's listening socket, bound before anything else starts."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise PortInUse(
            f"cannot listen on {host}:{port} ({exc.strerror}): another llmloop up or another "
            "program has it; stop that one or choose a port with --port"
        ) from exc
    return sock


class Service(Protocol):
    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, then return after finishing the current batch."""
        ...


def background_services(settings: Settings, bus: EventBus, store: Store) -> dict[str, Service]:
    """The services that run beside the API, by name; each consumes the bus on its own."""
    return {
        # The sink, the enricher (its model loads on the first completion, in a
        # thread, so the API answers at once) and the statistics timer.
        **processor_services(settings, bus, store),
        # Joins feedback to completions into preference pairs (state in
        # DATA_DIR/retraining) and runs DPO jobs when a model's policy says so.
        **retraining_services(settings, bus),
        # Rules on the metric events; signed webhooks (state in DATA_DIR/alerting.db).
        **alerting_services(settings, bus),
    }


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the runtime shuts down in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


async def run_embedded(
    settings: Settings,
    *,
    demo: bool = False,
    demo_rate: float = 20.0,
    ready: asyncio.Event | None = None,
) -> None:
    """Run until SIGINT / SIGTERM: migrate, then API + processor (+ demo traffic)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    listening = listen(settings.host, settings.port)  # first: a busy port fails at once
    try:
        store = open_store(settings.store_url)
    except BaseException:
        listening.close()
        raise
    try:
        async with stop_on_signals() as stop:
            report = await asyncio.to_thread(migrate, store)
            log.info("store %s at schema version %d", store.url, report.current)
            bus = open_bus(settings.bus_url)
            await bus.start()
            try:
                await _serve(
                    settings,
                    bus,
                    store,
                    stop,
                    listening,
                    demo=demo,
                    demo_rate=demo_rate,
                    ready=ready,
                )
            finally:
                await bus.close()
    finally:
        RuntimeInfo.remove(settings.data_dir)
        store.close()
        listening.close()
        log.info("llmloop stopped")


async def _serve(
    settings: Settings,
    bus: Any,
    store: Store,
    stop: asyncio.Event,
    listening: socket.socket,
    *,
    demo: bool,
    demo_rate: float,
    ready: asyncio.Event | None,
) -> None:
    services_stop = asyncio.Event()
    parts = background_services(settings, bus, store)
    running = [
        asyncio.create_task(service.run(services_stop), name=name)
        for name, service in parts.items()
    ]
    # The API needs a key, as in production; local traffic (the demo, apps on this
    # machine through the SDK) uses DATA_DIR/local.key, made on first start.
    config = ingest_settings(settings)
    local_key = ensure_local_key(settings.data_dir, config.keys_path())
    app: FastAPI = create_app(config, bus=bus)
    # Consumer lag per group and the enrichment / embedding backlog on /metrics (issue 18).
    gauges = LagGauges(app.state.metrics.registry, bus, parts)
    running.append(asyncio.create_task(gauges.run(services_stop), name="lag-gauges"))
    api_url = (
        f"http://{settings.host if settings.host != '0.0.0.0' else '127.0.0.1'}:{settings.port}"
    )
    info = RuntimeInfo.new(api_url, settings.store_url)
    app.include_router(local_router(store, info.token))
    console_token = add_console(app, settings, store, bus)
    server = _Server(
        uvicorn.Config(
            app, host=settings.host, port=settings.port, log_config=None, access_log=False
        )
    )
    serving = asyncio.create_task(server.serve(sockets=[listening]), name="api")
    while not server.started:
        if serving.done():
            await serving  # raises why it could not start
            raise SystemExit(f"the API could not start on {settings.host}:{settings.port}")
        await asyncio.sleep(0.05)
    info.write(settings.data_dir)
    log.info("API listening on %s  (POST /v1/events, docs at %s/docs)", api_url, api_url)
    log.info(
        "console: %s/console/signin?token=%s  (sign-in link of this machine's user)",
        api_url,
        console_token,
    )
    log.info('query the store:  llmloop query "SELECT count() FROM completions"')
    log.info(
        "API key of project 'default': %s (the SDK reads it there; curl: "
        '-H "Authorization: Bearer $(cat %s)")',
        settings.data_dir / "local.key",
        settings.data_dir / "local.key",
    )
    demo_task = None
    if demo:
        demo_task = asyncio.create_task(
            run_demo(
                api_url,
                stop,
                rate=demo_rate,
                headers={"Authorization": f"Bearer {local_key}"},
            ),
            name="demo",
        )
        log.info(
            "demo traffic: about %.0f events/s (drift after 3,000 completions, bias on de-DE)",
            demo_rate,
        )
    if ready is not None:
        ready.set()
    watched = {asyncio.create_task(stop.wait()), serving, *running}
    await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
    log.info("shutting down")
    stop.set()
    if demo_task is not None:
        sent = await demo_task
        log.info("demo sent %d events", sent)
    server.should_exit = True  # finish in-flight requests, then the processor drains
    await serving
    services_stop.set()
    for task in running:
        await task  # re-raises if a service is what failed
