"""Lag gauges: consumer lag per group from the local log, the embedding backlog and rates."""

from __future__ import annotations

import uuid

from prometheus_client import CollectorRegistry, generate_latest

from llmloop import topics
from llmloop.bus import Record, open_bus
from llmloop_processor.lag import LagGauges
from llmloop_processor.sampling import AdaptiveSampler


class Stage:
    def __init__(self, sampler: AdaptiveSampler) -> None:
        self.writer = type("W", (), {"sampler": sampler})()


async def test_consumer_lag_per_group_and_backlog_are_exported() -> None:
    bus = open_bus("memory://")
    await bus.start()
    await bus.publish(topics.EVENTS, [Record(None, b"{}") for _ in range(5)])
    consumer = bus.consumer([topics.EVENTS], "llmloop-enricher")
    await consumer.start()
    await consumer.poll(3, 0.1)
    await consumer.commit()
    sampler = AdaptiveSampler()
    for i in range(3):
        sampler.decide(uuid.UUID(int=i), ("p", "m", "v1"))  # rate 1 at first: all sampled
    registry = CollectorRegistry()
    await LagGauges(registry, bus, {"embedder": Stage(sampler)}).refresh()
    text = generate_latest(registry).decode()
    assert 'llmloop_consumer_lag{group="llmloop-enricher",topic="llmloop.events.v1"} 2.0' in text
    assert 'llmloop_consumer_lag{group="llmloop-embedder",topic="llmloop.events.v1"} 5.0' in text
    assert "llmloop_embedding_backlog 3.0" in text
    assert 'llmloop_embedding_sample_rate{model="m",project="p",prompt_version="v1"} 1.0' in text
    await bus.close()
