"""The store unavailable for a while: the processor pauses, commits no offset, resumes.

A ClickHouse server cannot run here, so the outage is a switch in front of the real
chDB store that fails every call as an unreachable server does (``StoreError``,
before the engine is reached). Everything else is real: the processor's sink,
enricher and statistics timer on a Kafka-protocol broker, events streaming in
throughout.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from llmloop import topics
from llmloop.bus import Record, open_bus
from llmloop.events import CompletionLogged, encode_event
from llmloop.store import Store, StoreError
from llmloop.testing.kafka import committed
from llmloop.testing.tansu import TansuBroker
from llmloop_processor.runtime import services
from llmloop_processor.settings import ProcessorSettings

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


class Outage:
    """The real store behind a switch: while ``down``, every call fails as it would
    against a ClickHouse server that stopped answering."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.down = False
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.store, name)
        if name not in {"command", "query", "query_raw", "insert"}:
            return real

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                self.refused += 1
                raise StoreError("ClickHouse at http://clickhouse:8123 is unreachable: refused")
            return real(*args, **kwargs)

        return call


def completions(start: int, n: int) -> list[Record]:
    out = []
    for i in range(start, start + n):
        c = CompletionLogged(model="m", prompt=f"q{i}", completion=f"a{i}", project_id="shop")
        out.append(Record(c.key(), encode_event(c)))
    return out


async def test_the_processor_pauses_while_the_store_is_down_and_resumes(
    store: Store, broker: TansuBroker, tmp_path
) -> None:
    outage = Outage(store)
    bus = open_bus(broker.url(partitions=2))
    await bus.start()
    settings = ProcessorSettings(
        data_dir=tmp_path,
        processor_embed=False,
        processor_stats_interval_s=1,
        processor_min_samples=10,
        writer_max_wait_s=0.05,
    )
    parts = services(settings, bus, outage)  # type: ignore[arg-type]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(part.run(stop)) for part in parts.values()]

    async def events_committed() -> int:
        """Offsets committed on the events topic by the slower of the sink and the enricher."""
        groups = ("llmloop-processor", "llmloop-enricher")
        return min([await committed(broker.bootstrap, group, topics.EVENTS) for group in groups])

    async def until(condition: Any, what: str) -> None:
        deadline = time.monotonic() + 60
        while not await condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            assert not any(t.done() for t in tasks), [t for t in tasks if t.done()]
            await asyncio.sleep(0.2)

    try:
        await bus.publish(topics.EVENTS, completions(0, 300))

        async def first_stored() -> bool:
            return await events_committed() == 300

        await until(first_stored, "the first 300 events")
        outage.down = True
        for i in range(300, 900, 100):  # the stream goes on during the outage
            await bus.publish(topics.EVENTS, completions(i, 100))
            await asyncio.sleep(0.3)
        await asyncio.sleep(2)
        # Paused: every service kept trying, none committed past what it had stored.
        assert outage.refused > 3
        assert await events_committed() == 300
        # (The switch blocks the services only: the test reads the engine behind it.)
        assert store.query("SELECT count() FROM completions").scalar() == 300
        outage.down = False

        async def all_stored() -> bool:
            return await events_committed() == 900

        await until(all_stored, "the 600 events sent during the outage")

        async def metrics_again() -> bool:
            return bool(store.query("SELECT count() FROM metrics").scalar())

        await until(metrics_again, "statistics after the outage")
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await bus.close()
    counts = store.query("SELECT count(), uniqExact(event_id) FROM completions").rows[0]
    assert counts == (900, 900)
    enriched = store.query("SELECT count(), uniqExact(event_id) FROM completion_enrichments")
    assert enriched.rows[0] == (900, 900)
