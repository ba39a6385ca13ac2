"""An alert that fires before a model has enough preference pairs still starts its job.

The policy starts a job when a listed alert fires for the model, but never on fewer than
``min_total_pairs``. On real traffic the drift alert can come first (its window closes
while the feedback is still arriving): the job must start once the pairs are there, if
the alert is still firing then, and not if it resolved meanwhile. The real service on
the memory bus, its real policy and join; the job is stopped once requested.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from retraining_data import feedback_traffic

from llmloop import topics
from llmloop.bus import Record, open_bus
from llmloop.events import AlertStateChanged, encode_event, parse_event
from llmloop_retraining.config import RetrainingSettings
from llmloop_retraining.policy import PolicyBook
from llmloop_retraining.service import Retrainer

POLICY = {
    "default": {
        "min_new_pairs": 100_000,  # only the alert can start a job
        "alert_rules": ["embedding-drift"],
        "min_total_pairs": 16,
        "base_model": "tiny:0",
        "train": {"max_steps": 1, "batch_size": 8},
    }
}


def alert(status: str) -> AlertStateChanged:
    return AlertStateChanged(
        rule="embedding-drift",
        status=status,  # type: ignore[arg-type]
        fingerprint="drift-tiny-chat",
        labels={"project": "demo", "model": "tiny-chat"},
        starts_at=datetime.now(UTC),
    )


async def publish(bus, topic: str, events) -> None:
    await bus.publish(topic, [Record(e.key(), encode_event(e)) for e in events])


async def requested_after_pairs(tmp_path, alerts: list[AlertStateChanged]) -> list:
    """Publish ``alerts``, let the service see them with no pairs, then the feedback; the
    retrain events it published once every pair is joined."""
    bus = open_bus("memory://")
    await bus.start()
    service = Retrainer(
        bus,
        RetrainingSettings(data_dir=tmp_path),
        policies=PolicyBook.model_validate(POLICY),
        max_wait_s=0.05,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await publish(bus, topics.ALERTS, alerts)
        await asyncio.sleep(0.5)  # handled, with no pairs: nothing can start yet
        assert service.join.models() == []
        await publish(bus, topics.EVENTS, feedback_traffic(60))
        deadline = time.monotonic() + 30
        while service.join.count("tiny-chat") < 60:
            assert time.monotonic() < deadline and not task.done()
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # any job the pairs start is requested by now
        consumer = bus.consumer([topics.RETRAIN], "test-alerts")
        await consumer.start()
        events = [parse_event(m.value) for m in await consumer.poll(100, 0.5)]
        await consumer.close()
    finally:
        stop.set()
        await task
        await bus.close()
    return [e for e in events if e.stage == "requested"]


async def test_a_firing_alert_starts_the_job_once_the_pairs_arrive(tmp_path) -> None:
    [requested] = await requested_after_pairs(tmp_path, [alert("firing")])
    assert requested.model == "tiny-chat"
    assert "embedding-drift is firing" in (requested.message or ""), requested.message


async def test_an_alert_resolved_before_the_pairs_arrive_starts_nothing(tmp_path) -> None:
    assert await requested_after_pairs(tmp_path, [alert("firing"), alert("resolved")]) == []
