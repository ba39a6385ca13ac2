"""The enrichment consumer: completions in, ``completion_enrichments`` rows out, each once.

It is its own consumer group beside the sink (``service.Processor``): raw rows
land in ``completions`` within a second, and the scalar features follow at the
rate events arrive, never waiting for embeddings: those are a sample, embedded
behind it by its own group (``embedding.py``). Its lag is visible in its group
offsets.
Redelivery is harmless: ids already enriched are skipped before any model runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

from llmloop import topics
from llmloop.bus import EventBus, Message, consume
from llmloop.events import CompletionLogged, parse_event
from llmloop.store import Store
from llmloop_processor.contents import ContentJoin
from llmloop_processor.enrich import Enricher
from llmloop_processor.writer import RETRY_WINDOW

log = logging.getLogger(__name__)

GROUP = "llmloop-enricher"
TABLE = "completion_enrichments"
STOP_GRACE_S = 1.0


async def until_stopped(
    consuming: asyncio.Task[Any],
    stop: asyncio.Event,
    what: str,
    abandon: Callable[[], None] | None = None,
) -> None:
    """Wait for a consumer loop to end, or for ``stop``; then give the batch in flight a
    short grace and abandon it (``abandon`` interrupts its work): it is not committed, so
    the next start takes it again."""
    await asyncio.wait(
        {consuming, asyncio.create_task(stop.wait())}, return_when=asyncio.FIRST_COMPLETED
    )
    done, _ = await asyncio.wait({consuming}, timeout=STOP_GRACE_S)
    if not done:
        if abandon is not None:
            abandon()
        consuming.cancel()
        log.info("%s stopped mid-batch; the batch is redelivered on restart", what)
    with contextlib.suppress(asyncio.CancelledError):
        await consuming


class EnrichmentWriter:
    """Enriches the completions of a batch that are not enriched yet, and inserts them."""

    def __init__(self, store: Store, enricher: Enricher) -> None:
        self.store = store
        self.enricher = enricher

    def write(self, events: Sequence[CompletionLogged]) -> int:
        unique = {e.event_id: e for e in events}
        if not unique:
            return 0
        found = self.store.query(
            f"SELECT event_id FROM {TABLE} WHERE ts "
            "BETWEEN {lo:DateTime64(3, 'UTC')} AND {hi:DateTime64(3, 'UTC')} "
            "AND event_id IN {ids:Array(UUID)}",
            {
                # As the sink does: a client retry stamped "now" by ingest carries a
                # later time than the copy already enriched.
                "lo": min(e.timestamp for e in unique.values()) - RETRY_WINDOW,
                "hi": max(e.timestamp for e in unique.values()),
                "ids": list(unique),
            },
        )
        stored = {row[0] for row in found.rows}
        new = [e for event_id, e in unique.items() if event_id not in stored]
        if not new:
            return 0
        # An OTLP span whose content came as log records (issue 13): the content is
        # enriched, not the empty span. It is found when the sink stored it first, the
        # usual order (exporters send logs every second, spans every five); content
        # that comes after the span leaves that span's enrichment on empty text.
        new = ContentJoin(self.store).fill(new, [])
        return self.store.insert(TABLE, self.enricher.table(new))


def completions(batch: Sequence[Message]) -> list[CompletionLogged]:
    """The readable completions of a batch (the sink dead-letters the rest)."""
    out = []
    for message in batch:
        try:
            event = parse_event(message.value)
        except ValidationError:
            continue
        if isinstance(event, CompletionLogged):
            out.append(event)
    return out


class EnrichmentService:
    """Consumes the events topic as its own group and enriches every completion."""

    def __init__(
        self,
        bus: EventBus,
        writer: EnrichmentWriter,
        *,
        batch_size: int = 256,
        max_wait_s: float = 0.5,
    ) -> None:
        self.bus = bus
        self.writer = writer
        self.batch_size = batch_size
        self.max_wait_s = max_wait_s
        self.enriched = 0
        self.newest_ts: float | None = None  # the newest completion enriched (lag gauge)
        self.consumer: Any = None
        self._last_report = time.monotonic()

    async def handle(self, batch: list[Message]) -> None:
        events = completions(batch)
        if events:
            self.enriched += await asyncio.to_thread(self.writer.write, events)
            newest = max(e.timestamp for e in events).timestamp()
            self.newest_ts = max(newest, self.newest_ts or newest)
        if time.monotonic() - self._last_report > 30:
            self._last_report = time.monotonic()
            log.info("enricher: %d completions enriched", self.enriched)

    async def run(self, stop: asyncio.Event) -> None:
        consumer = self.bus.consumer([topics.EVENTS], GROUP)
        self.consumer = consumer
        await consumer.start()
        log.info("enricher consuming %s as group %s", topics.EVENTS, GROUP)
        consuming = asyncio.create_task(
            consume(
                consumer,
                self.handle,
                batch_size=self.batch_size,
                max_wait_s=self.max_wait_s,
                stop=stop,
            )
        )
        try:
            await until_stopped(consuming, stop, "enricher")
        finally:
            await consumer.close()
            self.writer.enricher.close()
