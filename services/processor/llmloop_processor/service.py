"""The processor's sink: every topic in, rows out, offsets committed after the write.

``runtime.serve`` runs it beside the enricher and the statistics timer.
"""

from __future__ import annotations

import asyncio
import logging
import time

from pydantic import ValidationError

from llmloop import topics
from llmloop.bus import EventBus, Message, Record, consume
from llmloop.events import AnyEvent, error_field, parse_event
from llmloop.store import Store
from llmloop_processor.writer import StoreWriter

log = logging.getLogger(__name__)

GROUP = "llmloop-processor"
TOPICS = (topics.EVENTS, topics.METRICS, topics.ALERTS, topics.RETRAIN)


def dead_letter(message: Message, reason: str) -> Record:
    """A record for the dead-letter topic: the original bytes, where they came from, why."""
    return Record(
        key=message.key,
        value=message.value,
        headers=(
            ("error", reason[:2000].encode()),
            ("topic", message.topic.encode()),
            ("partition", str(message.partition).encode()),
            ("offset", str(message.offset).encode()),
        ),
    )


class Processor:
    """Parses each batch, dead-letters what cannot be read, writes the rest once."""

    def __init__(
        self, bus: EventBus, store: Store, *, batch_size: int = 5_000, max_wait_s: float = 0.25
    ) -> None:
        self.bus = bus
        self.batch_size = batch_size
        self.max_wait_s = max_wait_s
        self.writer = StoreWriter(store)
        self.written = 0
        self.duplicates = 0
        self.dead_lettered = 0
        self._last_report = time.monotonic()

    async def handle(self, batch: list[Message]) -> None:
        events: list[AnyEvent] = []
        dead: list[Record] = []
        for message in batch:
            try:
                events.append(parse_event(message.value))
            except ValidationError as exc:
                dead.append(dead_letter(message, _reason(exc)))
        if dead:
            await self.bus.publish(topics.DEADLETTER, dead)
            self.dead_lettered += len(dead)
            log.warning("dead-lettered %d unreadable messages", len(dead))
        result = await asyncio.to_thread(self.writer.write, events)
        self.written += sum(result.inserted.values())
        self.duplicates += result.duplicates
        if result.duplicates:
            log.info("skipped %d events already stored (redelivery)", result.duplicates)
        if time.monotonic() - self._last_report > 30:
            self._last_report = time.monotonic()
            log.info(
                "processor: %d rows written, %d duplicates skipped, %d dead-lettered",
                self.written,
                self.duplicates,
                self.dead_lettered,
            )

    async def run(self, stop: asyncio.Event) -> None:
        consumer = self.bus.consumer(TOPICS, GROUP)
        await consumer.start()
        log.info("processor consuming %s as group %s", ", ".join(TOPICS), GROUP)
        try:
            await consume(
                consumer,
                self.handle,
                batch_size=self.batch_size,
                max_wait_s=self.max_wait_s,
                stop=stop,
            )
        finally:
            await consumer.close()


def _reason(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return f"{error_field(first)}: {first['msg']} ({exc.error_count()} error(s))"
