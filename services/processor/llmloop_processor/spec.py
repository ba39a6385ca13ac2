"""The processor, declared once: the sink, enrichment, embeddings, statistics, its commands."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmloop.service import Runnable, ServiceSpec, Wiring
from llmloop_processor.settings import ProcessorSettings


def parts(wiring: Wiring) -> Mapping[str, Runnable]:
    """The sink, the enricher, the embedding stage and the statistics timer; with an HTTP
    API beside them (``llmloop up``), the lag gauges on its ``/metrics`` too."""
    from llmloop_processor.runtime import services

    assert wiring.store is not None
    made: dict[str, Any] = services(wiring.settings, wiring.bus, wiring.store)
    if wiring.metrics is not None:
        from llmloop_processor.lag import LagGauges

        made["lag-gauges"] = LagGauges(wiring.metrics, wiring.bus, made)
    return made


def add_commands(sub: Any) -> None:
    from llmloop_processor.commands import add_commands

    add_commands(sub)


SPEC = ServiceSpec(
    name="processor",
    summary="the one writer of ClickHouse: sink, enrichment, embeddings, drift and bias statistics",
    extra="processor",
    settings=ProcessorSettings,
    add_commands=add_commands,
    parts=parts,
    needs_store=True,
    order=10,
)
