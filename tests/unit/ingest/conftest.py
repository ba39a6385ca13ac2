"""Fixtures for ingest's unit tests: a memory bus, a key store with two projects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from llmloop.bus import EventBus, open_bus
from llmloop_ingest.keys import KeyStore


@pytest.fixture
async def bus() -> AsyncIterator[EventBus]:
    bus = open_bus("memory://")
    await bus.start()
    yield bus
    await bus.close()


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, str]:
    """Real keys in a real key store under tmp_path: project -> key."""
    store = KeyStore(tmp_path / "keys.db")
    return {project: store.create(project)[0] for project in ("shop", "bank")}
