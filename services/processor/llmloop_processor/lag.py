"""Lag on ``/metrics``: how far each consumer group, enrichment and the embedding sample are behind.

Gauges on a Prometheus registry (the ingest app's, in ``llmloop up``), refreshed
every ``interval_s`` by a background task:

* ``llmloop_consumer_lag{group, topic}``: messages not committed by the group
  (the sink, the enricher, the embedding stage, alerting...), where the bus can
  tell (the local log; on Kafka, use the broker's lag exporter).
* ``llmloop_enrichment_lag_seconds``: now minus the time of the newest
  completion the enricher wrote (0 when it is idle and caught up).
* ``llmloop_embedding_backlog``: completions chosen for embedding and not
  embedded yet; ``llmloop_embedding_capacity_per_second``: the throughput the
  sampler measured; ``llmloop_embedding_sample_rate{project, model, prompt_version}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from llmloop import topics
from llmloop.bus import EventBus
from llmloop_processor.sampling import AdaptiveSampler

log = logging.getLogger(__name__)

# The groups of the embedded runtime and the topics they read.
GROUPS: dict[str, tuple[str, ...]] = {
    "llmloop-processor": (topics.EVENTS, topics.METRICS, topics.ALERTS, topics.RETRAIN),
    "llmloop-enricher": (topics.EVENTS,),
    "llmloop-embedder": (topics.EVENTS,),
}


class LagGauges:
    """Refreshes the lag gauges from the bus and the processor's parts."""

    def __init__(
        self,
        registry: CollectorRegistry,
        bus: EventBus,
        parts: Mapping[str, Any],
        *,
        groups: Mapping[str, tuple[str, ...]] = GROUPS,
        interval_s: float = 2.0,
    ) -> None:
        self.bus, self.parts, self.groups, self.interval_s = bus, parts, dict(groups), interval_s
        self.consumer_lag = Gauge(
            "llmloop_consumer_lag",
            "Messages not yet committed by a consumer group, per topic",
            ["group", "topic"],
            registry=registry,
        )
        self.enrichment_lag = Gauge(
            "llmloop_enrichment_lag_seconds",
            "Now minus the timestamp of the newest completion enriched (0 when caught up)",
            registry=registry,
        )
        self.embedding_backlog = Gauge(
            "llmloop_embedding_backlog",
            "Completions chosen for embedding and not embedded yet",
            registry=registry,
        )
        self.embedding_capacity = Gauge(
            "llmloop_embedding_capacity_per_second",
            "Completions per second of model time the embedding stage measured",
            registry=registry,
        )
        self.sample_rate = Gauge(
            "llmloop_embedding_sample_rate",
            "Current embedding sample rate per key",
            ["project", "model", "prompt_version"],
            registry=registry,
        )

    async def refresh(self) -> None:
        lag = getattr(self.bus, "lag", None)
        enricher_lag = None
        if lag is not None:
            for group, group_topics in self.groups.items():
                for topic, n in (await lag(group, group_topics)).items():
                    self.consumer_lag.labels(group, topic).set(n)
                    if group == "llmloop-enricher":
                        enricher_lag = n
        enricher = self.parts.get("enricher")
        newest = getattr(enricher, "newest_ts", None)
        if enricher_lag == 0 or newest is None:
            self.enrichment_lag.set(0.0)
        else:
            self.enrichment_lag.set(max(0.0, time.time() - newest))
        embedder = self.parts.get("embedder")
        sampler = getattr(getattr(embedder, "writer", None), "sampler", None)
        if sampler is not None:
            self.embedding_backlog.set(sampler.pending)
        if isinstance(sampler, AdaptiveSampler):
            self.embedding_capacity.set(sampler.capacity_per_s)
            for key, rate in sampler.rates().items():
                self.sample_rate.labels(*key).set(rate)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.refresh()
            except Exception:  # a gauge that cannot refresh must not stop the runtime
                log.exception("lag gauges: refresh failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)
