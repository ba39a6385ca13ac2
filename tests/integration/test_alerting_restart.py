"""Restarting the alerting process (kill -9) in the middle of a firing alert neither loses
nor repeats its notification: state and outbox live in its SQLite journal."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from llmloop import topics
from llmloop.bus import open_bus
from llmloop.events import NotificationAttempted, parse_event
from llmloop.signing import IDEMPOTENCY_HEADER
from llmloop.testing.metrics import metric_event, publish_metrics
from llmloop.testing.webhooks import WebhookReceiver
from llmloop_alerting.service import GROUP

pytestmark = pytest.mark.slow

RULES = """
receivers: [{{name: hook, url: "{url}", timeout: 10s}}]
rules: [{{name: latency, metric: latency_p95_ms, threshold: 5000, renotify: 1h, receivers: [hook]}}]
"""


class AlertingProcess:
    """``llmloop alerting`` as its own process on a shared sqlite:// bus."""

    def __init__(self, tmp_path: Path, url: str) -> None:
        self.tmp_path = tmp_path
        (tmp_path / "rules.yaml").write_text(RULES.format(url=url))
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = (tmp_path / "alerting.log").open("ab")  # what the process said, on failure

    def start(self) -> None:
        env = {
            **os.environ,
            "LLMLOOP_ALERTING_SECRET": "s",
            "LLMLOOP_ALERTING_TICK_S": "0.1",
            "LLMLOOP_ALERTING_BACKOFF_BASE_S": "0.05",
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llmloop_app.cli",
                "alerting",
                "--data-dir",
                str(self.tmp_path),
                "--broker",
                f"sqlite:///{self.tmp_path}/bus.db",
                "--rules",
                str(self.tmp_path / "rules.yaml"),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


@pytest.fixture
async def setup(tmp_path):
    bus = open_bus(f"sqlite:///{tmp_path}/bus.db")
    await bus.start()
    async with WebhookReceiver(hang_s=30) as hook:
        process = AlertingProcess(tmp_path, hook.url("/hook"))
        try:
            yield bus, hook, process
        finally:
            process.stop()
    await bus.close()


async def consumed(bus, count: int, timeout_s: float = 30.0) -> None:
    """Wait until the alerting group committed ``count`` metric events."""
    for _ in range(int(timeout_s / 0.05)):
        if await bus.storage.committed(GROUP, topics.METRICS) >= count:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"alerting did not consume {count} metric events")


async def delivery_recorded(bus, timeout_s: float = 30.0) -> None:
    """Wait for the "delivered" attempt event: the journal recorded the 2xx before publishing it.

    (Killed between the receiver's 2xx and that record, the process sends the notification
    again after a restart, with the same Idempotency-Key: the at-least-once window.)
    """
    for _ in range(int(timeout_s / 0.05)):
        for message in await bus.storage.read(topics.ALERTS, 0, 1000):
            event = parse_event(message.value)
            if isinstance(event, NotificationAttempted) and event.outcome == "delivered":
                return
        await asyncio.sleep(0.05)
    raise TimeoutError("no delivered attempt was recorded")


async def test_a_delivered_alert_is_not_sent_again_after_kill_9(setup):
    bus, hook, process = setup
    process.start()
    await publish_metrics(bus, metric_event("latency_p95_ms", 9000, labels={"model": "m"}))
    await hook.wait_for(1)
    await delivery_recorded(bus)
    process.kill()
    process.start()
    await publish_metrics(
        bus, *[metric_event("latency_p95_ms", 9500, labels={"model": "m"}) for _ in range(3)]
    )
    await consumed(bus, 4)
    await asyncio.sleep(0.5)
    assert len(hook.requests) == 1  # still firing, already delivered: nothing new
    await publish_metrics(bus, metric_event("latency_p95_ms", 800, labels={"model": "m"}))
    delivered = await hook.wait_for(2)
    assert [r.json()["status"] for r in delivered] == ["firing", "resolved"]
    assert len(hook.requests) == 2


async def test_a_notification_in_flight_at_kill_9_is_delivered_once_after_restart(setup):
    bus, hook, process = setup
    hook.script("/hook", ["timeout"])  # the first request hangs: kill while it is in flight
    process.start()
    await publish_metrics(bus, metric_event("latency_p95_ms", 9000, labels={"model": "m"}))
    await hook.wait_requests(1)
    process.kill()
    process.start()
    delivered = await hook.wait_for(1)
    await asyncio.sleep(0.5)
    assert len(delivered) == 1 and len(hook.requests) == 2
    # The retry is recognisably the same notification.
    assert hook.requests[0].headers[IDEMPOTENCY_HEADER] == delivered[0].headers[IDEMPOTENCY_HEADER]
