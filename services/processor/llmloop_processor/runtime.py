"""The composition of the processor's parts, shared by ``llmloop up``, ``llmloop processor``
and the faust app: the sink, the enricher, the embedding stage and the statistics timer."""

from __future__ import annotations

from typing import Any, cast

from llmloop.bus import EventBus
from llmloop.service import derive_settings
from llmloop.settings import Settings
from llmloop.store import Store
from llmloop_processor import shard
from llmloop_processor.embed import Embedder, Sampler
from llmloop_processor.embedding import EmbeddingService, EmbeddingWriter
from llmloop_processor.enrichment import Enricher, EnrichmentService, EnrichmentWriter
from llmloop_processor.sampling import AdaptiveSampler, EmbeddingSampler
from llmloop_processor.settings import ProcessorSettings
from llmloop_processor.sink import Sink
from llmloop_processor.stats import StatsRunner


def processor_settings(settings: Settings) -> ProcessorSettings:
    """The processor's settings: the given base settings plus LLMLOOP_PROCESSOR_* from the env."""
    return cast(ProcessorSettings, derive_settings(ProcessorSettings, settings))


def build_sampler(settings: ProcessorSettings) -> EmbeddingSampler:
    """The embedding sampler: adaptive by default, fixed rates when configured so."""
    if not settings.processor_embed_adaptive:
        return Sampler(settings.processor_embed_sample_rate, settings.processor_embed_sample_rates)
    return AdaptiveSampler(
        target_per_window=settings.processor_embed_target_per_window,
        window_s=settings.processor_stats_window_s,
        capacity_hint_per_s=settings.processor_embed_capacity_hint,
        headroom=settings.processor_embed_headroom,
        max_rates=settings.processor_embed_sample_rates,
        default_max_rate=settings.processor_embed_sample_rate,
    )


def build_embedder(settings: ProcessorSettings) -> Embedder:
    """The embedder; its model loads on first use, never here."""
    return Embedder(
        settings.processor_embed_model or None,
        batch_size=settings.processor_embed_batch_size,
        cache_size=settings.processor_embed_cache_size,
        max_seq_length=settings.processor_embed_max_tokens,
        in_process=not settings.processor_embed_in_child,
        backend=settings.processor_embed_backend,
        threads=settings.processor_embed_threads,
        nice=settings.processor_embed_nice,
        cache_dir=settings.processor_embed_cache_dir or None,
    )


def build_enricher(settings: ProcessorSettings, sampler: EmbeddingSampler | None) -> Enricher:
    return Enricher(
        sampler if settings.processor_embed else None,
        settings.price_table(),
        in_child=settings.processor_features_in_child,
    )


def enrichment_services(settings: ProcessorSettings, bus: EventBus, store: Store) -> dict[str, Any]:
    """The enricher and, when embeddings are on, the embedding stage sharing its sampler."""
    sampler = build_sampler(settings)
    out: dict[str, Any] = {
        "enricher": EnrichmentService(
            bus,
            EnrichmentWriter(store, build_enricher(settings, sampler)),
            batch_size=settings.processor_enrich_batch_size,
        )
    }
    if settings.processor_embed:
        out["embedder"] = EmbeddingService(
            bus, EmbeddingWriter(store, build_embedder(settings), sampler)
        )
    return out


def services(
    settings: Settings,
    bus: EventBus,
    store: Store,
    *,
    ownership: shard.Ownership = shard.everything,
) -> dict[str, Any]:
    """Every part of the processor, by name, each with ``async run(stop)``: what ``llmloop
    up``, ``llmloop processor`` and the faust worker run. ``ownership`` is the statistics
    keys this replica computes (the faust worker: its partitions'; default: every key)."""
    ps = processor_settings(settings)
    return {
        "processor": Sink(
            bus, store, batch_size=ps.writer_batch_size, max_wait_s=ps.writer_max_wait_s
        ),
        **enrichment_services(ps, bus, store),
        "stats": StatsRunner(store, bus, ps, ownership=ownership),
    }
