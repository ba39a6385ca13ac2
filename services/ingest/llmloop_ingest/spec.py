"""Ingest, declared once: the HTTP API that apps and OpenTelemetry send to, its commands."""

from __future__ import annotations

from typing import Any, cast

from llmloop.service import ServiceSpec, Wiring
from llmloop_ingest.settings import IngestSettings


def http(wiring: Wiring) -> Any:
    """The API that ``llmloop up`` serves, publishing to the runtime's bus. Local traffic
    (the demo, apps on this machine through the SDK) uses DATA_DIR/local.key, made here
    on first start: the API needs a key, as in production."""
    from llmloop_ingest.app import create_app
    from llmloop_ingest.keys import ensure_local_key

    settings = cast(IngestSettings, wiring.settings)  # derive_settings made it one
    ensure_local_key(settings.data_dir, settings.keys_path())
    return create_app(settings, bus=wiring.bus)


def add_commands(sub: Any) -> None:
    from llmloop_ingest.commands import add_commands

    add_commands(sub)


SPEC = ServiceSpec(
    name="ingest",
    summary="the HTTP API: events, OTLP traces and logs, API keys",
    extra="ingest",
    settings=IngestSettings,
    add_commands=add_commands,
    http=http,
    order=0,
)
