"""Helpers for ingest's unit tests (a module of its own: conftest names clash across dirs)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from llmloop import topics
from llmloop.bus import EventBus, Message


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def client_for(app: Any, key: str | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://test",
        headers=auth(key) if key else None,
    )


async def published(bus: EventBus) -> list[Message]:
    consumer = bus.consumer([topics.EVENTS], f"test-{uuid.uuid4()}")
    await consumer.start()
    return await consumer.poll(1000, 0.01)
