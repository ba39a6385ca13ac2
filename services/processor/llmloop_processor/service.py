"""The processor's consumer: every topic in, rows out, offsets committed after the write."""

from __future__ import annotations

import asyncio
import logging
import time

from pydantic import ValidationError

from llmloop import topics
from llmloop.bus import EventBus, Message, Record, consume, open_bus
from llmloop.events import AnyEvent, parse_event
from llmloop.settings import Settings
from llmloop.store import Store, open_store
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
    where = ".".join(str(p) for p in first["loc"]) or "message"
    return f"{where}: {first['msg']} ({exc.error_count()} error(s))"


async def serve(settings: Settings) -> None:
    """Run the processor on its own (distributed runtime) until SIGINT / SIGTERM."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    store = open_store(settings.store_url)
    bus = open_bus(settings.bus_url)
    try:
        await bus.start()
        processor = Processor(
            bus,
            store,
            batch_size=settings.writer_batch_size,
            max_wait_s=settings.writer_max_wait_s,
        )
        await processor.run(stop)
    finally:
        await bus.close()
        store.close()
