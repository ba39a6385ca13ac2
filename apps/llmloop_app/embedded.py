"""The embedded runtime of ``llmloop up``: every installed service in one process.

The services come from the registry (``llmloop.service.discover``): the one with
an HTTP API (ingest) is served on ``--port`` and publishes to the durable local
log; every service's parts run beside it on that log and the chDB store (the
processor writes it). The same services and the same bus and store ports as the
distributed runtime, wired in one asyncio loop. ``--broker`` / ``--store`` swap
the adapters for Kafka and a ClickHouse server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import socket
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, Header, HTTPException
from fastapi.responses import Response
from pydantic import BaseModel, Field

from llmloop.bus import open_bus
from llmloop.lifecycle import stop_on_signals, tune_gc, tune_memory
from llmloop.runtime_file import TOKEN_HEADER, RuntimeInfo
from llmloop.service import ServiceSpec, Wiring, build_parts, discover, run_parts, wiring_for
from llmloop.settings import Settings
from llmloop.store import Store, StoreError, open_store
from llmloop.store.migrate import migrate
from llmloop_app.console import add_console
from llmloop_app.demo import run_demo

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


def api_spec(specs: list[ServiceSpec]) -> ServiceSpec:
    """The one service whose HTTP API ``up`` serves (ingest)."""
    serving = [spec for spec in specs if spec.http is not None]
    if len(serving) != 1:
        names = ", ".join(spec.name for spec in serving) or "none"
        raise RuntimeError(f"llmloop up serves one HTTP API; the installed services offer {names}")
    return serving[0]


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
    tune_memory()
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
    specs = discover()
    api = api_spec(specs)
    base = Wiring(settings, bus, store)
    app: FastAPI = api.http(wiring_for(api, base))  # type: ignore[misc]
    # Every service's parts beside the API, on its bus and store; the processor's lag
    # gauges go on the API's /metrics (issue 18).
    parts = build_parts(specs, Wiring(settings, bus, store, metrics=app.state.metrics.registry))
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
    # The services start once the API does (so nothing runs if it cannot); what the API
    # accepted meanwhile is on the log and they take it from there.
    services_stop = asyncio.Event()
    running = asyncio.create_task(run_parts(parts, services_stop), name="services")
    log.info("services: %s", ", ".join(parts))
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
                headers={"Authorization": f"Bearer {_local_key(settings)}"},
            ),
            name="demo",
        )
        log.info(
            "demo traffic: about %.0f events/s (drift after 3,000 completions, bias on de-DE)",
            demo_rate,
        )
    tune_gc()
    if ready is not None:
        ready.set()
    watched = {asyncio.create_task(stop.wait()), serving, running}
    await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
    log.info("shutting down")
    stop.set()
    if demo_task is not None:
        sent = await demo_task
        log.info("demo sent %d events", sent)
    server.should_exit = True  # finish in-flight requests, then the processor drains
    await serving
    services_stop.set()
    await running  # re-raises if a service is what failed


def _local_key(settings: Settings) -> str:
    return (settings.data_dir / "local.key").read_text().strip()
