"""Events through ingest, the bus and the processor into chDB: each exactly once, on every bus."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest

from llmloop import topics
from llmloop.bus import Record
from llmloop.settings import Settings
from llmloop_ingest.app import create_app
from llmloop_ingest.auth import SingleProject
from llmloop_processor.sink import Sink


def batch(completions: int, feedback: int) -> list[dict]:
    events = [
        {
            "type": "completion",
            "event_id": str(uuid.uuid4()),
            "model": f"model-{i % 2}",
            "prompt": f"question {i}",
            "completion": f"answer {i}",
            "prompt_tokens": i,
            "attributes": {"locale": "de-DE" if i % 3 else "en-US"},
        }
        for i in range(completions)
    ]
    events += [
        {
            "type": "feedback",
            "kind": "thumbs",
            "event_id": str(uuid.uuid4()),
            "completion_id": events[i]["event_id"],
            "value": 1 if i % 2 else -1,
        }
        for i in range(feedback)
    ]
    return events


async def until(condition, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while not (result := await asyncio.to_thread(condition)):
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)
    return result


@pytest.fixture
async def running(any_bus, store):
    processor = Sink(any_bus, store, batch_size=500, max_wait_s=0.1)
    stop = asyncio.Event()
    task = asyncio.create_task(processor.run(stop))
    app = create_app(Settings(), bus=any_bus, authenticator=SingleProject())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c, processor
    stop.set()
    await asyncio.wait_for(task, 10)


async def test_same_batch_twice_leaves_one_row_per_event(running, store):
    client, processor = running
    events = batch(completions=60, feedback=25)
    for _ in range(2):
        response = await client.post("/v1/events", json={"events": events})
        assert response.status_code == 202, response.text

    await until(lambda: store.query("SELECT count() FROM feedback").scalar() == 25)
    await until(lambda: processor.duplicates >= 85)  # the second copy was read and skipped
    rows = store.query(
        "SELECT count(), uniqExact(event_id), countIf(project_id = 'default') FROM completions"
    ).rows[0]
    assert rows == (60, 60, 60)
    assert store.query("SELECT uniqExact(event_id) FROM feedback").scalar() == 25
    by_model = dict(store.query("SELECT model, count() FROM completions GROUP BY model").rows)
    assert by_model == {"model-0": 30, "model-1": 30}


async def test_a_retry_without_timestamp_counts_once(running, store):
    """Ingest stamps "now" on an event without a timestamp, so a retry differs in time."""
    client, processor = running
    event = batch(1, 0)[0]
    assert "timestamp" not in event
    assert (await client.post("/v1/events", json={"events": [event]})).status_code == 202
    await until(lambda: store.query("SELECT count() FROM completions").scalar() == 1)
    await asyncio.sleep(0.01)
    assert (await client.post("/v1/events", json={"events": [event]})).status_code == 202
    await until(lambda: processor.duplicates >= 1)
    assert store.query("SELECT count() FROM completions").scalar() == 1


async def test_unreadable_messages_are_dead_lettered_and_the_stream_goes_on(
    running, any_bus, store
):
    client, processor = running
    await any_bus.publish(
        topics.EVENTS,
        [
            Record(key=b"k", value=b"{not json"),
            Record(key=b"k", value=b'{"type": "completion", "model": "m"}'),
        ],
    )
    response = await client.post("/v1/events", json={"events": batch(3, 0)})
    assert response.status_code == 202
    await until(lambda: store.query("SELECT count() FROM completions").scalar() == 3)
    await until(lambda: processor.dead_lettered == 2)

    consumer = any_bus.consumer([topics.DEADLETTER], f"dlq-reader-{uuid.uuid4()}")
    await consumer.start()
    dead = []
    deadline = time.monotonic() + 15
    while len(dead) < 2 and time.monotonic() < deadline:
        dead += await consumer.poll(10, 1.0)
    await consumer.close()
    assert sorted(m.value for m in dead) == [b'{"type": "completion", "model": "m"}', b"{not json"]
    reasons = [dict(m.headers)["error"].decode() for m in dead]
    assert any("JSON" in r or "json" in r for r in reasons)
    assert any("prompt" in r or "completion" in r or "event_id" in r for r in reasons)
    assert {dict(m.headers)["topic"] for m in dead} == {topics.EVENTS.encode()}
