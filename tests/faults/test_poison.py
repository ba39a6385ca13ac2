"""Poison messages on every topic: each goes to the dead-letter topic with its reason and
where it came from, and every service goes on with the stream behind it.

The distributed runtime runs as deployed (``loop.Loop``); the poison is produced
straight onto the topics with a plain Kafka client, as a buggy or hostile producer
would: bytes that are not JSON, truncated JSON, JSON that is not an object, a
tombstone (no value at all), an event of a schema version this build does not know
(an extra field; a ``.v2`` type). The processor reads all four topics and is the
one that dead-letters; alerting and retraining read past what they cannot parse.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from faults.test_kill import REFUSAL, pairs, refusals_loop
from llmloop import Client, topics
from llmloop.testing.kafka import read_topic
from llmloop.testing.tansu import TansuBroker
from llmloop.testing.webhooks import WebhookReceiver

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

POISON_TOPICS = (topics.EVENTS, topics.METRICS, topics.ALERTS, topics.RETRAIN)


def poison() -> dict[str, bytes | None]:
    """One of each kind of unreadable message, by name."""
    now = datetime.now(UTC).isoformat()
    completion = {
        "type": "completion",
        "event_id": str(uuid.uuid4()),
        "timestamp": now,
        "project_id": "shop",
        "model": "m",
        "prompt": "p",
        "completion": "c",
    }
    return {
        "not-json": b"\xff\xfe{\x00garbage",
        "truncated": b'{"type": "completion", "event_id": ',
        "not-an-object": b"[1, 2, 3]",
        "tombstone": None,
        "unknown-field-v2": orjson.dumps({**completion, "schema_version": 2}),
        "type-v2": orjson.dumps({**completion, "type": "completion.v2"}),
    }


async def produce_poison(broker: TansuBroker) -> dict[tuple[str, str], bytes | None]:
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=False)
    await producer.start()
    sent: dict[tuple[str, str], bytes | None] = {}
    try:
        for topic in POISON_TOPICS:
            for kind, value in poison().items():
                await producer.send_and_wait(topic, value, key=f"{topic}/{kind}".encode())
                sent[(topic, kind)] = value
    finally:
        await producer.stop()
    return sent


def log_traffic(client: Client, model: str, n: int) -> tuple[list[str], list[str]]:
    """``n`` completions (half refusals: the alert fires) and a preference per two."""
    completions, feedback = [], []
    for i in range(0, n, 2):
        a = client.log_completion(model=model, prompt=f"q{i}", completion=REFUSAL)
        b = client.log_completion(model=model, prompt=f"q{i}", completion=f"answer {i}")
        completions += [a, b]
        feedback.append(client.feedback(None, "preference", chosen_id=b, rejected_id=a))
    assert client.flush(60)
    return completions, feedback


async def test_poison_on_every_topic_is_dead_lettered_and_the_stream_goes_on(
    tmp_path, broker: TansuBroker
) -> None:
    async with WebhookReceiver() as hook:
        loop = refusals_loop(tmp_path, broker, hook)
        try:
            loop.start()
            with Client(loop.ingest_url, loop.key, spool_dir=tmp_path / "spool") as client:
                before = log_traffic(client, "before", 40)
                await loop.settle("processor", "alerting", "retraining")
                sent = await produce_poison(broker)
                after = log_traffic(client, "after", 40)
            await loop.settle("processor", "alerting", "retraining")

            async def alerted() -> bool:
                return any(
                    r.json()["commonLabels"].get("model") == "after" for r in hook.delivered()
                )

            for _ in range(120):
                if await alerted():
                    break
                loop.check_alive()
                await asyncio.sleep(0.5)
            assert await alerted(), "no alert for the traffic behind the poison"
            dead = await read_topic(broker.bootstrap, topics.DEADLETTER)
            loop.check_alive()
            await loop.stop("ingest", "alerting", "retraining")
            await loop.settle("processor")
            await loop.stop("processor")
        finally:
            loop.close()

    # Each poison message once in the dead letters: its bytes, its origin and why.
    got = {m.key.decode(): m for m in dead}
    assert sorted(got) == sorted(f"{topic}/{kind}" for topic, kind in sent)
    assert len(dead) == len(sent)
    for (topic, kind), value in sent.items():
        message = got[f"{topic}/{kind}"]
        headers = dict(message.headers)
        assert message.value == value
        assert headers["topic"] == topic.encode()
        assert headers["error"], kind
    reasons = {kind: dict(got[f"{topics.EVENTS}/{kind}"].headers)["error"] for kind in poison()}
    assert b"JSON" in reasons["not-json"] and b"JSON" in reasons["truncated"]
    assert b"schema_version" in reasons["unknown-field-v2"]
    assert b"completion.v2" in reasons["type-v2"]
    # The good traffic on both sides of the poison: each event once.
    completions = before[0] + after[0]
    feedback = before[1] + after[1]
    assert loop.query("SELECT count(), uniqExact(event_id) FROM completions") == [
        [str(len(completions))] * 2
    ]
    assert loop.query("SELECT count(), uniqExact(event_id) FROM feedback") == [
        [str(len(feedback))] * 2
    ]
    assert pairs(loop) == len(feedback)  # retraining read past the poison too
