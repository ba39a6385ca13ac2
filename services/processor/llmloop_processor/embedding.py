"""The embedding stage: the sampled completions' vectors into ``completion_embeddings``.

Its own consumer group on the events topic, behind the enricher: the enricher
writes every completion's scalar row at once and records whether it is in the
embedding sample (``embedding_state = 'sampled'``); this stage reads the same
events, looks up those decisions, and embeds only the sampled ones. Its group's
lag is the embedding backlog, and the enricher's sampler (``sampling.py``)
sizes the sample from the throughput this stage reports, so the backlog stays
bounded instead of holding back the scalar features.

Idempotent: ids already in ``completion_embeddings`` are skipped before the
model runs, and the table is a ReplacingMergeTree keyed on ``event_id``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from llmloop import topics
from llmloop.bus import EventBus
from llmloop.consumer import EventConsumer
from llmloop.events import AnyEvent, CompletionLogged
from llmloop.store import Store
from llmloop_processor.embed import Embedder, quantize
from llmloop_processor.enrichment import EMBEDDING, completions, int8_lists
from llmloop_processor.enrichment import TABLE as ENRICHMENTS
from llmloop_processor.sampling import EmbeddingSampler
from llmloop_processor.writer import stored_copy

log = logging.getLogger(__name__)

GROUP = "llmloop-embedder"
TABLE = "completion_embeddings"

SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("project_id", pa.string()),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("model", pa.string()),
        ("prompt_version", pa.string()),
        ("embedding_sample_rate", pa.float32()),
        ("embedder", pa.string()),
    ]
)


class EmbeddingWriter:
    """Embeds the completions of a batch that the enricher sampled and that lack vectors."""

    def __init__(self, store: Store, embedder: Embedder, sampler: EmbeddingSampler) -> None:
        self.store = store
        self.embedder = embedder
        self.sampler = sampler
        self.embedded = 0
        self.busy_s = 0.0

    def decisions(self, events: Sequence[CompletionLogged]) -> dict[Any, tuple[str, float]]:
        """event_id -> (embedding_state, rate) of the events the enricher has stored."""
        where, params = stored_copy(events)
        found = self.store.query(
            "SELECT event_id, embedding_state, embedding_sample_rate "
            f"FROM {ENRICHMENTS} WHERE {where}",
            params,
        )
        return {row[0]: (row[1], float(row[2])) for row in found.rows}

    def already_embedded(self, events: Sequence[CompletionLogged]) -> set[Any]:
        where, params = stored_copy(events)
        found = self.store.query(f"SELECT event_id FROM {TABLE} WHERE {where}", params)
        return {row[0] for row in found.rows}

    def write(
        self, events: Sequence[CompletionLogged], decisions: dict[Any, tuple[str, float]]
    ) -> int:
        """Embed and insert the sampled ``events`` not embedded yet; how many were."""
        sampled = [e for e in events if decisions.get(e.event_id, ("",))[0] == "sampled"]
        if not sampled:
            return 0
        done = self.already_embedded(sampled)
        todo = [e for e in sampled if e.event_id not in done]
        if len(todo) < len(sampled):
            self.sampler.skipped(len(sampled) - len(todo))
        if not todo:
            return 0
        started = time.monotonic()
        vectors = quantize(
            self.embedder.encode([e.prompt_text() for e in todo] + [e.completion for e in todo])
        )
        busy = time.monotonic() - started
        self.sampler.embedded(len(todo), busy)
        self.embedded += len(todo)
        self.busy_s += busy
        table = pa.Table.from_pylist(
            [
                {
                    "event_id": str(e.event_id),
                    "project_id": e.project_id or "",
                    "ts": e.timestamp,
                    "model": e.model,
                    "prompt_version": e.prompt_version or "",
                    "embedding_sample_rate": decisions[e.event_id][1],
                    "embedder": self.embedder.name,
                }
                for e in todo
            ],
            schema=SCHEMA,
        )
        n = len(todo)
        table = table.append_column(
            pa.field("prompt_embedding", EMBEDDING), int8_lists(list(vectors[:n]))
        )
        table = table.append_column(
            pa.field("completion_embedding", EMBEDDING), int8_lists(list(vectors[n:]))
        )
        return self.store.insert(TABLE, table)


class EnrichmentPending(RuntimeError):
    """The runtime stops while completions of the batch await their scalar rows."""


class EmbeddingService(EventConsumer):
    """Consumes the events topic as its own group and embeds the sampled completions."""

    name = "embedder"
    group = GROUP
    topics = (topics.EVENTS,)

    def __init__(
        self,
        bus: EventBus,
        writer: EmbeddingWriter,
        *,
        batch_size: int = 512,
        max_wait_s: float = 0.5,
        enrichment_wait_s: float = 0.2,
        enrichment_patience_s: float = 300.0,
    ) -> None:
        """Args:
        enrichment_wait_s: how long to wait before looking again for scalar rows the
            enricher has not written yet (this stage is behind it, but may start first).
        enrichment_patience_s: after this long, events still without a scalar row are
            logged and passed over (nothing reads an unenriched completion).
        """
        super().__init__(bus, batch_size=batch_size, max_wait_s=max_wait_s)
        self.writer = writer
        self.enrichment_wait_s = enrichment_wait_s
        self.enrichment_patience_s = enrichment_patience_s
        self._stop: asyncio.Event | None = None

    async def handle_events(self, batch_events: list[AnyEvent]) -> None:
        events = completions(batch_events)
        if not events:
            return
        decisions = await asyncio.to_thread(self.writer.decisions, events)
        waited = time.monotonic()
        while missing := [e for e in events if e.event_id not in decisions]:
            if time.monotonic() - waited > self.enrichment_patience_s:
                log.warning(
                    "embedder: %d completions still have no enrichment row after %.0f s; "
                    "passed over",
                    len(missing),
                    self.enrichment_patience_s,
                )
                break
            if self._stop is not None and self._stop.is_set():
                # Stopping: fail the batch, so it is not committed and is redelivered.
                raise EnrichmentPending(f"{len(missing)} completions not enriched yet")
            await asyncio.sleep(self.enrichment_wait_s)
            decisions.update(await asyncio.to_thread(self.writer.decisions, missing))
        await asyncio.to_thread(self.writer.write, events, decisions)

    def progress(self) -> str:
        w = self.writer
        rate = w.embedded / w.busy_s if w.busy_s else 0.0
        return f"{w.embedded} completions embedded ({rate:.1f}/s of model time)"

    def abandon(self) -> None:
        # A batch being embedded may take seconds (or wait for the model to load);
        # nothing else waits on embeddings, so it is abandoned after the grace.
        self.writer.embedder.abort()

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        await super().run(stop)

    async def close(self) -> None:
        await asyncio.to_thread(self.writer.embedder.close)
