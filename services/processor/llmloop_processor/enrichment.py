"""The enrichment stage: completions in, ``completion_enrichments`` rows out, each once.

``Enricher`` makes the rows (cost, tokens, lengths, and the text features of
``features``, computed in a worker process in ``llmloop up``), ``EnrichmentWriter``
inserts the ones not enriched yet, and ``EnrichmentService`` is the consumer.

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
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from llmloop import topics
from llmloop.bus import EventBus
from llmloop.consumer import EventConsumer
from llmloop.events import AnyEvent, CompletionLogged
from llmloop.store import Store
from llmloop_processor.contents import ContentJoin
from llmloop_processor.features import FeatureWorker, text_features
from llmloop_processor.rows import COMMON, LABELS, S, field, text
from llmloop_processor.sampling import EmbeddingSampler
from llmloop_processor.writer import stored_copy

log = logging.getLogger(__name__)

GROUP = "llmloop-enricher"
TABLE = "completion_enrichments"

# USD per 1M tokens (input, output). Public list prices, mid 2025; users override
# them (``LLMLOOP_PROCESSOR_PRICES``) for their contracts and their own models.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "o3-mini": (1.10, 4.40),
    "claude-3-5-sonnet": (3.00, 15.00),
    "claude-3-5-haiku": (0.80, 4.00),
    "gemini-1.5-flash": (0.075, 0.30),
    "llama-3.1-8b": (0.05, 0.08),
}

# USD per 1M cached input tokens (read from the cache, written to it), where the
# provider prices them apart (issue 13: OTel's gen_ai.usage.cache_read / cache_creation).
# OpenAI bills cache reads at a discount and writes as ordinary input; Anthropic bills
# reads at a tenth and writes at 1.25x. A model without an entry pays the input price.
DEFAULT_CACHE_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (1.25, 2.50),
    "gpt-4o-mini": (0.075, 0.15),
    "gpt-4.1": (0.50, 2.00),
    "gpt-4.1-mini": (0.10, 0.40),
    "o3-mini": (0.55, 1.10),
    "claude-3-5-sonnet": (0.30, 3.75),
    "claude-3-5-haiku": (0.08, 1.00),
    "gemini-1.5-flash": (0.01875, 0.075),
}


def cost_usd(
    e: CompletionLogged,
    prompt_tokens: int,
    completion_tokens: int,
    price: tuple[float, float],
    cache_price: tuple[float, float] | None,
) -> float:
    """The cost of a call: cached input at its own price, the rest of the input at the
    input price (the conventions count cached tokens inside the input tokens)."""
    read, write = e.cache_read_tokens or 0, e.cache_write_tokens or 0
    read_price, write_price = cache_price or (price[0], price[0])
    uncached = max(0, prompt_tokens - read - write)
    return (
        uncached * price[0] + read * read_price + write * write_price + completion_tokens * price[1]
    ) / 1e6


# Refusals: the phrasings assistants use when declining, anchored near the start.


def estimate_tokens(text: str) -> int:
    """Roughly 4 characters per token for English BPE vocabularies; flagged as estimated."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


def price_for(model: str, prices: Mapping[str, tuple[float, float]]) -> tuple[float, float] | None:
    """The price of ``model``, else of its longest known prefix (``gpt-4o-2024-08-06``)."""
    if model in prices:
        return prices[model]
    best = max((k for k in prices if model.startswith(k)), key=len, default=None)
    return None if best is None else prices[best]


class Enricher:
    """Completions in, enrichment rows out (one dict per completion, matching the table).

    Scalar features only: they are cheap enough for every completion, so they are
    written as the events arrive. Whether a completion is in the embedding sample
    is decided here (``sampler``) and recorded on the row; its vectors follow in
    ``completion_embeddings``, written by the embedding stage (``embedding.py``).
    """

    def __init__(
        self,
        sampler: EmbeddingSampler | None,
        prices: Mapping[str, tuple[float, float]] | None = None,
        toxic_threshold: float = 0.5,
        *,
        in_child: bool = False,
    ) -> None:
        """Args:
        sampler: chooses the completions to embed; None when embeddings are off.
        in_child: compute the text features in a worker process (``FeatureWorker``).
        """
        self.sampler = sampler
        self._worker: FeatureWorker | None = FeatureWorker() if in_child else None
        self.prices = dict(DEFAULT_PRICES if prices is None else prices)
        self.toxic_threshold = toxic_threshold

    def close(self) -> None:
        """Stop the feature worker, if any."""
        if self._worker is not None:
            self._worker.close()

    def table(self, events: Sequence[CompletionLogged]) -> pa.Table:
        """The ``completion_enrichments`` rows of ``events`` as one Arrow table (no
        vectors: those are the embedding stage's). Built a column at a time."""
        prompts = [e.prompt_text() for e in events]
        outputs = [e.completion for e in events]
        features = (self._worker or text_features)(prompts, outputs)
        columns: dict[str, Any] = {c.name: c.array(events) for c in _EVENT_COLUMNS}
        columns["prompt_chars"] = list(map(len, prompts))
        columns["completion_chars"] = list(map(len, outputs))
        columns.update(self._usage(events, prompts, outputs))
        columns.update(features)
        tox = zip(columns["prompt_toxicity"], columns["completion_toxicity"], strict=True)
        columns["toxic"] = [max(p, c) >= self.toxic_threshold for p, c in tox]
        columns["embedding_state"], columns["embedding_sample_rate"] = self._samples(events)
        # The vectors are in completion_embeddings now (issue 18); `embedded` stays true
        # only on rows written before, which hold them here.
        columns["embedded"] = [False] * len(events)
        return pa.Table.from_pydict(columns, schema=SCALAR_SCHEMA)

    def _samples(self, events: Sequence[CompletionLogged]) -> tuple[list[str], list[float]]:
        """Each completion's embedding_state and the sample rate it was chosen at."""
        if self.sampler is None:  # embeddings off: nothing to decide per completion
            return ["off"] * len(events), [0.0] * len(events)
        sampler = self.sampler
        decided = [
            sampler.decide(e.event_id, (e.project_id or "", e.model, e.prompt_version or ""))
            for e in events
        ]
        states = ["sampled" if chosen else "not_sampled" for chosen, _ in decided]
        return states, [rate for _, rate in decided]

    def _usage(
        self, events: Sequence[CompletionLogged], prompts: list[str], outputs: list[str]
    ) -> dict[str, list[Any]]:
        """Tokens (estimated where the event has none) and cost (priced where it has none)."""
        prices: dict[str, tuple[Any, Any]] = {}  # model -> (price, cache price), once a batch
        out: dict[str, list[Any]] = {name: [] for name in _USAGE}
        for e, prompt, output in zip(events, prompts, outputs, strict=True):
            p_tok, c_tok = e.prompt_tokens, e.completion_tokens
            out["tokens_estimated"].append(p_tok is None or c_tok is None)
            p_tok = estimate_tokens(prompt) if p_tok is None else p_tok
            c_tok = estimate_tokens(output) if c_tok is None else c_tok
            cost, cost_source = e.cost_usd, "event"
            if cost is None:
                if e.model not in prices:
                    prices[e.model] = (
                        price_for(e.model, self.prices),
                        price_for(e.model, DEFAULT_CACHE_PRICES),
                    )
                price, cache_price = prices[e.model]
                cost = None if price is None else cost_usd(e, p_tok, c_tok, price, cache_price)
                cost_source = "unknown" if price is None else "price_table"
            out["prompt_tokens"].append(p_tok)
            out["completion_tokens"].append(c_tok)
            out["cost_usd"].append(cost)
            out["cost_source"].append(cost_source)
        return out


# The columns an enrichment row copies from its completion, and those it computes.
_EVENT_COLUMNS = (
    *COMMON,
    field("model", S),
    text("model_version"),
    text("prompt_version"),
    field("attributes", LABELS),
    field("latency_ms", pa.float64()),
)
_USAGE = ("prompt_tokens", "completion_tokens", "tokens_estimated", "cost_usd", "cost_source")


_EMPTY = np.zeros(0, dtype=np.int8)
EMBEDDING = pa.list_(pa.int8())
_S, _F, _F32, _U32, _B = pa.string(), pa.float64(), pa.float32(), pa.uint32(), pa.bool_()
SCALAR_SCHEMA = pa.schema(
    [
        ("event_id", _S),
        ("project_id", _S),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("model", _S),
        ("model_version", _S),
        ("prompt_version", _S),
        ("attributes", pa.map_(_S, _S)),
        ("prompt_chars", _U32),
        ("completion_chars", _U32),
        ("prompt_tokens", _U32),
        ("completion_tokens", _U32),
        ("tokens_estimated", _B),
        ("latency_ms", _F),
        ("cost_usd", _F),
        ("cost_source", _S),
        ("prompt_sentiment", _F32),
        ("completion_sentiment", _F32),
        ("prompt_toxicity", _F32),
        ("completion_toxicity", _F32),
        ("toxic", _B),
        ("refusal", _B),
        ("pii", pa.list_(_S)),
        ("demographics", pa.list_(_S)),
        ("embedding_sample_rate", _F32),
        ("embedded", _B),
        ("embedding_state", _S),  # migration 0019 (issue 18): sampled / not_sampled / off
    ]
)


def int8_lists(arrays: list[np.ndarray]) -> pa.Array:
    """Int8 vectors as one Arrow list column, built from numpy without Python ints."""
    offsets = np.zeros(len(arrays) + 1, dtype=np.int32)
    np.cumsum([len(a) for a in arrays], out=offsets[1:])
    flat = np.concatenate(arrays) if arrays else _EMPTY
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, type=pa.int8()))


class EnrichmentWriter:
    """Enriches the completions of a batch that are not enriched yet, and inserts them."""

    def __init__(self, store: Store, enricher: Enricher) -> None:
        self.store = store
        self.enricher = enricher

    def write(self, events: Sequence[CompletionLogged]) -> int:
        unique = {e.event_id: e for e in events}
        if not unique:
            return 0
        where, params = stored_copy(list(unique.values()))
        found = self.store.query(f"SELECT event_id FROM {TABLE} WHERE {where}", params)
        stored = {row[0] for row in found.rows}
        new = [e for event_id, e in unique.items() if event_id not in stored]
        if not new:
            return 0
        # An OTLP span whose content came as log records (issue 13): the content is
        # enriched, not the empty span. It is found when the sink stored it first, the
        # usual order (exporters send logs every second, spans every five); content
        # that comes after the span leaves that span's enrichment on empty text.
        new = ContentJoin(self.store).fill(new, [])
        return self.store.insert(TABLE, self.enricher.table(new), unique_keys=True)


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
