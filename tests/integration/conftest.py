"""Fixtures for integration tests: a migrated chDB store, and a bus of each kind."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from llmloop.bus import EventBus, open_bus
from llmloop.store import Store, open_store
from llmloop.store.migrate import migrate
from llmloop.testing.tansu import TansuBroker


@pytest.fixture
def store(tmp_path) -> Iterator[Store]:
    """A fresh, migrated embedded store (chDB allows one per process at a time)."""
    store = open_store(f"chdb:///{tmp_path}/chdb")
    migrate(store)
    yield store
    store.close()


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
