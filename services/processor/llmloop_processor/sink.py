"""The processor's sink: every topic in, rows out, offsets committed after the write.

It runs beside the enricher, the embedding stage and the statistics timer
(``runtime.services``). ``dead_letter`` is the shared policy's (``llmloop.consumer``).
"""

from __future__ import annotations

import asyncio
import logging

from llmloop import topics
from llmloop.bus import EventBus
from llmloop.consumer import EventConsumer
from llmloop.events import AnyEvent
from llmloop.store import Store
from llmloop_processor.writer import StoreWriter

log = logging.getLogger(__name__)

GROUP = "llmloop-processor"
TOPICS = (topics.EVENTS, topics.METRICS, topics.ALERTS, topics.RETRAIN)


class Sink(EventConsumer):
    """The sink: every topic in, each event written once, what cannot be read dead-lettered."""

    name = "processor"
    group = GROUP
    topics = TOPICS
    dead_letters = True  # the one consumer of every topic
    stop_grace_s = None  # a write in flight always finishes: it is what commits

    def __init__(
        self, bus: EventBus, store: Store, *, batch_size: int = 5_000, max_wait_s: float = 0.25
    ) -> None:
        super().__init__(bus, batch_size=batch_size, max_wait_s=max_wait_s)
        self.writer = StoreWriter(store)
        self.written = 0
        self.duplicates = 0

    async def handle_events(self, events: list[AnyEvent]) -> None:
        result = await asyncio.to_thread(self.writer.write, events)
        self.written += sum(result.inserted.values())
        self.duplicates += result.duplicates
        if result.duplicates:
            log.info("skipped %d events already stored (redelivery)", result.duplicates)

    @property
    def dead_lettered(self) -> int:
        return self.unreadable

    def progress(self) -> str:
        return (
            f"{self.written} rows written, {self.duplicates} duplicates skipped, "
            f"{self.unreadable} dead-lettered"
        )
