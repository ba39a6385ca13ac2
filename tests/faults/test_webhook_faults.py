"""Webhook receivers that are down, slow, or answer 500, all at once, with exact counts.

Ten alerts fire together; each goes to four receivers over real HTTP:

* ``down``: nothing listens on its port for the first seconds (connection refused),
  then a receiver starts there;
* ``slow``: answers every request after a delay that is below the delivery timeout;
* ``flaky``: its first 20 answers are 500 (two per notification), then 200;
* ``broken``: answers 500 for ever, so every notification is dead-lettered after its
  last attempt.

Afterwards every notification was delivered exactly once (one 2xx per notification id
at the receiver) or dead-lettered, and the attempt events on the bus say so.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from llmloop import topics
from llmloop.bus import open_bus
from llmloop.events import NotificationAttempted, parse_event
from llmloop.signing import IDEMPOTENCY_HEADER
from llmloop.testing.metrics import metric_event, publish_metrics, running
from llmloop.testing.tansu import free_port
from llmloop.testing.webhooks import WebhookReceiver
from llmloop_alerting.service import AlertingService
from llmloop_alerting.settings import AlertingSettings

pytestmark = pytest.mark.slow
ALERTS = 10
ATTEMPTS = 4


async def attempts(bus) -> list[NotificationAttempted]:
    messages = await bus.storage.read(topics.ALERTS, 0, 100_000)
    events = [parse_event(m.value) for m in messages]
    return [e for e in events if isinstance(e, NotificationAttempted)]


async def test_down_slow_and_failing_receivers(tmp_path: Path) -> None:
    down_port = free_port()
    async with (
        WebhookReceiver(delay_s=1.0) as slow,
        WebhookReceiver() as flaky,
        WebhookReceiver() as broken,
    ):
        flaky.script("/hook", [500] * 2 * ALERTS)  # two failures per notification, in all
        receivers = {
            "down": f"http://127.0.0.1:{down_port}/hook",
            "slow": slow.url("/hook"),
            "flaky": flaky.url("/hook"),
            "broken": broken.url("/hook"),
        }
        rules = {
            "receivers": [
                {
                    "name": n,
                    "type": "webhook",
                    "url": u,
                    "timeout": "3s",
                    # `down` refuses for a second: room for retries whatever the jitter.
                    "max_attempts": 8 if n == "down" else ATTEMPTS,
                }
                for n, u in receivers.items()
            ],
            "rules": [
                {
                    "name": "toxicity",
                    "metric": "toxicity_rate",
                    "threshold": 0.1,
                    "receivers": list(receivers),
                }
            ],
        }
        broken.script("/hook", [500] * ATTEMPTS * ALERTS)
        path = tmp_path / "rules.yaml"
        path.write_text(yaml.safe_dump(rules))
        settings = AlertingSettings(
            data_dir=tmp_path,
            alerting_rules=path,
            alerting_secret="s",
            alerting_backoff_base_s=0.5,
            alerting_backoff_max_s=1.0,
            alerting_tick_s=0.1,
        )
        bus = open_bus("memory://")
        await bus.start()
        try:
            async with running(AlertingService(bus, settings)) as service:
                await publish_metrics(
                    bus,
                    *(
                        metric_event("toxicity_rate", 0.5, labels={"model": str(i)})
                        for i in range(ALERTS)
                    ),
                )
                await asyncio.sleep(1.0)  # the first attempts to `down` are refused
                async with WebhookReceiver(port=down_port) as down:
                    deadline = time.monotonic() + 60
                    while len({e.notification_id for e in await attempts(bus)}) < 4 * ALERTS or [
                        e for e in await _latest(bus) if e.outcome == "retrying"
                    ]:
                        assert time.monotonic() < deadline, Counter(
                            e.outcome for e in await _latest(bus)
                        )
                        await asyncio.sleep(0.2)
                    while service.deliverer._in_flight:
                        await asyncio.sleep(0.05)
                    latest = await _latest(bus)
                    all_attempts = await attempts(bus)
        finally:
            await bus.close()

    by_receiver = {
        name: {e.notification_id: e for e in latest if e.receiver == name} for name in receivers
    }
    for name in ("down", "slow", "flaky"):
        outcomes = Counter(e.outcome for e in by_receiver[name].values())
        assert outcomes == {"delivered": ALERTS}, (name, outcomes)
    assert Counter(e.outcome for e in by_receiver["broken"].values()) == {"dead_lettered": ALERTS}
    # The receivers' view: one 2xx per notification, never a second one.
    for name, receiver in (("down", down), ("slow", slow), ("flaky", flaky)):
        ids = [r.headers[IDEMPOTENCY_HEADER] for r in receiver.delivered()]
        assert len(ids) == len(set(ids)) == ALERTS, name
    assert not broken.delivered()
    assert len(broken.requests) == ALERTS * ATTEMPTS
    assert len(flaky.requests) == ALERTS * 3
    refused = [e for e in all_attempts if e.receiver == "down" and e.outcome == "retrying"]
    assert refused and all(e.http_status is None for e in refused)  # connection refused
    assert len(slow.requests) == ALERTS  # slow but within the timeout: never retried


async def _latest(bus) -> list[NotificationAttempted]:
    """Each notification's latest attempt."""
    latest: dict[str, NotificationAttempted] = {}
    for e in await attempts(bus):
        if e.notification_id not in latest or e.attempt >= latest[e.notification_id].attempt:
            latest[e.notification_id] = e
    return list(latest.values())
