"""The enrichment consumer: completions in, ``completion_enrichments`` rows out, each once.

It is its own consumer group beside the sink (``sink.Sink``): raw rows
land in ``completions`` within a second, and the scalar features follow at the
rate events arrive, never waiting for embeddings: those are a sample, embedded
behind it by its own group (``embedding.py``). Its lag is visible in its group
offsets.
Redelivery is harmless: ids already enriched are skipped before any model runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from llmloop import topics
from llmloop.bus import EventBus
from llmloop.consumer import EventConsumer
from llmloop.events import AnyEvent, CompletionLogged
from llmloop.store import Store
from llmloop_processor.contents import ContentJoin
from llmloop_processor.enrich import Enricher
from llmloop_processor.writer import RETRY_WINDOW

log = logging.getLogger(__name__)

GROUP = "llmloop-enricher"
TABLE = "completion_enrichments"


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


def completions(events: Sequence[AnyEvent]) -> list[CompletionLogged]:
    """The completions among a batch's events."""
    return [e for e in events if isinstance(e, CompletionLogged)]


class EnrichmentService(EventConsumer):
    """Consumes the events topic as its own group and enriches every completion."""

    name = "enricher"
    group = GROUP
    topics = (topics.EVENTS,)

    def __init__(
        self,
        bus: EventBus,
        writer: EnrichmentWriter,
        *,
        batch_size: int = 256,
        max_wait_s: float = 0.5,
    ) -> None:
        super().__init__(bus, batch_size=batch_size, max_wait_s=max_wait_s)
        self.writer = writer
        self.enriched = 0
        self.newest_ts: float | None = None  # the newest completion enriched (lag gauge)

    async def handle_events(self, events: list[AnyEvent]) -> None:
        found = completions(events)
        if found:
            self.enriched += await asyncio.to_thread(self.writer.write, found)
            newest = max(e.timestamp for e in found).timestamp()
            self.newest_ts = max(newest, self.newest_ts or newest)

    def progress(self) -> str:
        return f"{self.enriched} completions enriched"

    async def close(self) -> None:
        self.writer.enricher.close()
