"""The API docs page works offline: Swagger UI comes from the package, not a CDN."""

from __future__ import annotations

import re

from ingest_helpers import client_for

from llmloop.bus.memory import memory_bus
from llmloop_ingest.app import create_app
from llmloop_ingest.auth import SingleProject


async def test_docs_load_every_asset_from_this_server():
    app = create_app(bus=memory_bus(), authenticator=SingleProject())
    async with client_for(app) as client:
        page = await client.get("/docs")
        assert page.status_code == 200
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert assets and all(a.startswith("/") or a.startswith("data:") for a in assets), assets
        assert "cdn" not in page.text.lower()
        for asset in assets:
            if asset.startswith("/"):
                served = await client.get(asset)
                assert served.status_code == 200 and len(served.content) > 1000, asset
        assert (await client.get("/redoc")).status_code == 404
        assert (await client.get("/openapi.json")).json()["info"]["title"] == "llmloop ingest"
