"""Fixtures for integration tests: a bus of each kind (the store is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from llmloop.bus import EventBus, open_bus
from llmloop.testing.tansu import TansuBroker


@pytest.fixture(params=["memory", "kafka"])
async def any_bus(request) -> AsyncIterator[EventBus]:
    """A started bus of each kind. Kafka gets its own broker: llmloop's topics are fixed."""
    if request.param == "memory":
        bus = open_bus("memory://")
        await bus.start()
        yield bus
        await bus.close()
        return
    with TansuBroker() as broker:
        bus = open_bus(broker.url(partitions=3))
        await bus.start()
        yield bus
        await bus.close()
