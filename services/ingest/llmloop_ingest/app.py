"""``create_app``: the ingest API. Adapters open in the lifespan, never at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from llmloop import __version__
from llmloop.bus import EventBus, open_bus
from llmloop.settings import Settings
from llmloop_ingest.auth import Authenticator, SingleProject
from llmloop_ingest.routes import router


def create_app(
    settings: Settings | None = None,
    *,
    bus: EventBus | None = None,
    authenticator: Authenticator | None = None,
) -> FastAPI:
    """Build the ingest API.

    Pass ``bus`` to share one that the caller owns (the embedded runtime);
    otherwise the app opens ``settings.bus_url`` at start and closes it at stop.
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if bus is not None:
            yield  # the caller started it and will close it
            return
        app.state.bus = open_bus(settings.bus_url)
        await app.state.bus.start()
        try:
            yield
        finally:
            await app.state.bus.close()

    app = FastAPI(
        title="llmloop ingest",
        version=__version__,
        description="Send completions and feedback from your app.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.bus = bus
    app.state.authenticator = authenticator or SingleProject()
    app.include_router(router)
    return app
