"""Every transition and every delivery attempt lands in ClickHouse (sunk by the processor,
the one writer), dead letters included; and alerting runs the same on Kafka."""

from __future__ import annotations

import asyncio

import pytest

from llmloop.bus import open_bus
from llmloop.testing.metrics import metric_event, publish_metrics, running
from llmloop.testing.tansu import TansuBroker
from llmloop.testing.webhooks import WebhookReceiver
from llmloop_alerting.service import AlertingService
from llmloop_alerting.settings import AlertingSettings
from llmloop_processor.sink import Sink

RULES = """
receivers:
  - {{name: ok, url: "{ok}"}}
  - {{name: broken, url: "{broken}", max_attempts: 2}}
rules:
  - {{name: cost, metric: cost_usd_per_hour, threshold: 50, receivers: [ok, broken]}}
"""


def alerting_settings(tmp_path, hook) -> AlertingSettings:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.format(ok=hook.url("/ok"), broken=hook.url("/broken")))
    return AlertingSettings(
        data_dir=tmp_path,
        alerting_rules=rules,
        alerting_secret="s",
        alerting_backoff_base_s=0.05,
        alerting_tick_s=0.1,
    )


async def wait_rows(store, sql: str, expected: int, timeout_s: float = 20.0) -> list[tuple]:
    rows: list[tuple] = []
    for _ in range(int(timeout_s / 0.1)):
        rows = (await asyncio.to_thread(store.query, sql)).rows
        if len(rows) >= expected:
            return rows
        await asyncio.sleep(0.1)
    return rows


async def test_transitions_attempts_and_dead_letters_are_rows(tmp_path, store):
    bus = open_bus("memory://")
    await bus.start()
    processor_stop = asyncio.Event()
    processor = asyncio.create_task(Sink(bus, store, max_wait_s=0.05).run(processor_stop))
    try:
        async with WebhookReceiver() as hook:
            hook.script("/broken", [503, 503])
            async with running(AlertingService(bus, alerting_settings(tmp_path, hook))):
                await publish_metrics(bus, metric_event("cost_usd_per_hour", 80.0))
                await hook.wait_for(1, path="/ok")
                await hook.wait_requests(3)
                await publish_metrics(bus, metric_event("cost_usd_per_hour", 10.0))
                await hook.wait_for(2, path="/ok")
                attempts = await wait_rows(
                    store,
                    "SELECT receiver, status, attempt, outcome, http_status "
                    "FROM notification_attempts FINAL ORDER BY receiver, status, attempt",
                    5,
                )
        alerts = await wait_rows(store, "SELECT status FROM alerts FINAL ORDER BY ts", 2)
        dead = await wait_rows(
            store,
            "SELECT receiver, rule, status, failed_attempts, http_status "
            "FROM notification_dead_letters",
            1,
        )
    finally:
        processor_stop.set()
        await processor
        await bus.close()
    assert [r[0] for r in alerts] == ["firing", "resolved"]
    assert attempts == [
        ("broken", "firing", 1, "retrying", 503),
        ("broken", "firing", 2, "dead_lettered", 503),
        ("broken", "resolved", 1, "delivered", 200),
        ("ok", "firing", 1, "delivered", 200),
        ("ok", "resolved", 1, "delivered", 200),
    ]
    assert dead == [("broken", "cost", "firing", 2, 503)]


@pytest.mark.kafka
async def test_alerting_on_kafka_fires_and_resolves(tmp_path):
    with TansuBroker() as broker:
        bus = open_bus(broker.url(partitions=2))
        await bus.start()
        try:
            async with (
                WebhookReceiver() as hook,
                running(AlertingService(bus, alerting_settings(tmp_path, hook))),
            ):
                await publish_metrics(bus, metric_event("cost_usd_per_hour", 80.0))
                firing = await hook.wait_for(1, path="/ok")
                await publish_metrics(bus, metric_event("cost_usd_per_hour", 1.0))
                both = await hook.wait_for(2, path="/ok")
        finally:
            await bus.close()
    assert firing[0].json()["status"] == "firing"
    assert both[1].json()["status"] == "resolved"
