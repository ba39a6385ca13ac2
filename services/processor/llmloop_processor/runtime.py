"""The composition of the processor's parts, shared by ``llmloop up``, ``llmloop processor``
and the faust app: the sink, the enricher and the statistics timer."""

from __future__ import annotations

from typing import Any

from llmloop.bus import EventBus
from llmloop.settings import Settings
from llmloop.store import Store
from llmloop_processor.embed import Embedder, Sampler
from llmloop_processor.enrich import Enricher
from llmloop_processor.enrichment import EnrichmentService, EnrichmentWriter
from llmloop_processor.service import Processor
from llmloop_processor.settings import ProcessorSettings
from llmloop_processor.stats import StatsRunner


def processor_settings(settings: Settings) -> ProcessorSettings:
    """The processor's settings: the given base settings plus LLMLOOP_PROCESSOR_* from the env."""
    if isinstance(settings, ProcessorSettings):
        return settings
    return ProcessorSettings(**settings.model_dump())


def build_enricher(settings: ProcessorSettings) -> Enricher:
    """The enricher; its embedding model loads on first use, never here."""
    embedder = (
        Embedder(
            settings.processor_embed_model or None,
            batch_size=settings.processor_embed_batch_size,
            cache_size=settings.processor_embed_cache_size,
            in_process=not settings.processor_embed_in_child,
        )
        if settings.processor_embed
        else None
    )
    sampler = Sampler(settings.processor_embed_sample_rate, settings.processor_embed_sample_rates)
    return Enricher(embedder, sampler, settings.price_table())


def services(settings: Settings, bus: EventBus, store: Store) -> dict[str, Any]:
    """Every part of the processor, by name, each with ``async run(stop)``."""
    ps = processor_settings(settings)
    return {
        "processor": Processor(
            bus, store, batch_size=ps.writer_batch_size, max_wait_s=ps.writer_max_wait_s
        ),
        "enricher": EnrichmentService(bus, EnrichmentWriter(store, build_enricher(ps))),
        "stats": StatsRunner(store, bus, ps),
    }


async def serve(settings: Settings) -> None:
    """Run the processor on its own (distributed runtime) until SIGINT / SIGTERM."""
    import asyncio

    from llmloop.bus import open_bus
    from llmloop.lifecycle import stop_on_signals
    from llmloop.store import open_store

    store = open_store(settings.store_url)
    bus = open_bus(settings.bus_url)
    try:
        async with stop_on_signals() as stop:
            await bus.start()
            await asyncio.gather(
                *(
                    asyncio.create_task(service.run(stop), name=name)
                    for name, service in services(settings, bus, store).items()
                )
            )
    finally:
        await bus.close()
        store.close()
