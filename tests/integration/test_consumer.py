"""The consumer base in `llmloop up`'s shape: one process, ingest and every consumer on one log.

An event is validated once, at the edge: the consumers get the event ingest
validated, the same as parsing its bytes would give, and parse only what came
from elsewhere (another process, or beyond what the log keeps in memory). Only
the sink dead-letters what cannot be read; the others pass over it.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import httpx
import pytest

from llmloop import consumer, topics
from llmloop.bus import Record, open_bus
from llmloop.bus import local as local_log
from llmloop.consumer import EventConsumer
from llmloop.events import encode_event, parse_event
from llmloop.settings import Settings
from llmloop_ingest.app import create_app
from llmloop_ingest.auth import SingleProject
from llmloop_processor.sink import Sink

EXAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "events" / "examples"


class Collect(EventConsumer):
    """A consumer that keeps what it was handed."""

    name = "collect"
    group = "test-collect"
    topics = (topics.EVENTS,)

    def __init__(self, bus) -> None:
        super().__init__(bus, batch_size=100, max_wait_s=0.05)
        self.events: list = []

    async def handle_events(self, events) -> None:
        self.events.extend(events)


@pytest.fixture
def parses(monkeypatch):
    """How many events the consumers parsed from bytes."""
    count = [0]

    def counting(data):
        count[0] += 1
        return parse_event(data)

    monkeypatch.setattr(consumer, "parse_event", counting)
    return count


def completion(i: int) -> dict:
    return {
        "type": "completion",
        "event_id": str(uuid.uuid4()),
        "model": "m",
        "prompt": [{"role": "user", "content": f"question {i}"}],
        "completion": f"answer {i}",
        "timestamp": "2026-11-30T12:00:00.123456+01:00",
        "attributes": {"locale": "de-DE"},
        "latency_ms": 12.5,
    }


async def until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_ingest_validates_once_and_every_consumer_gets_that_event(tmp_path, store, parses):
    bus = open_bus(f"sqlite:///{tmp_path}/log.db")
    await bus.start()
    sink, collect = Sink(bus, store, batch_size=100, max_wait_s=0.05), Collect(bus)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(c.run(stop)) for c in (sink, collect)]
    app = create_app(Settings(data_dir=tmp_path), bus=bus, authenticator=SingleProject())
    sent = [completion(i) for i in range(50)]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.post("/v1/events", json={"events": sent})).status_code == 202
    await until(lambda: len(collect.events) == 50 and sink.written == 50)
    stop.set()
    await asyncio.gather(*tasks)
    await bus.close()

    assert parses[0] == 0  # neither consumer parsed: both got ingest's events
    # ...and those are exactly what parsing the stored bytes gives.
    raw = {
        r[0]: r[1] for r in store.query("SELECT toString(event_id), model FROM completions").rows
    }
    assert set(raw) == {e["event_id"] for e in sent}
    for event in collect.events:
        assert parse_event(encode_event(event)) == event
        assert event.project_id == "default"  # as ingest set it, not as the client sent it


async def test_records_from_elsewhere_or_past_the_memory_are_parsed(tmp_path, parses, monkeypatch):
    monkeypatch.setattr(local_log, "RECENT_EVENTS", 10)
    bus = open_bus(f"sqlite:///{tmp_path}/log.db")
    await bus.start()
    events = [parse_event(json.dumps({**completion(i), "project_id": "p"})) for i in range(30)]
    # 5 records from "another process" (bytes only), then 25 with their events, of which
    # the log keeps the newest 10 in memory.
    await bus.publish(topics.EVENTS, [Record(e.key(), encode_event(e)) for e in events[:5]])
    await bus.publish(
        topics.EVENTS, [Record(e.key(), encode_event(e), event=e) for e in events[5:]]
    )
    collect, stop = Collect(bus), asyncio.Event()
    task = asyncio.create_task(collect.run(stop))
    await until(lambda: len(collect.events) == 30)
    stop.set()
    await task
    await bus.close()
    assert collect.events == events  # the same events, in order, whichever way they came
    assert parses[0] == 20  # the 5 from elsewhere and the 15 the memory no longer held
    assert all(a is b for a, b in zip(collect.events[20:], events[20:], strict=True))


async def test_only_the_sink_dead_letters_what_cannot_be_read(tmp_path, store):
    bus = open_bus("memory://")
    await bus.start()
    good = parse_event(json.dumps({**completion(0), "project_id": "p"}))
    await bus.publish(
        topics.EVENTS,
        [
            Record(None, b'{"type": "completion", "model": ""}'),
            Record(good.key(), encode_event(good)),
        ],
    )
    sink, collect, stop = Sink(bus, store, max_wait_s=0.05), Collect(bus), asyncio.Event()
    tasks = [asyncio.create_task(c.run(stop)) for c in (sink, collect)]
    await until(lambda: collect.events and sink.written == 1)
    stop.set()
    await asyncio.gather(*tasks)
    reader = bus.consumer([topics.DEADLETTER], "inspect")
    await reader.start()
    letters = await reader.poll(10, 0.5)
    assert len(letters) == 1  # once, by the sink; the other consumer passed over it
    error = dict(letters[0].headers)["error"].decode()
    assert error.startswith("model: "), error  # names the field
    assert collect.events == [good] and collect.unreadable == 1 and sink.unreadable == 1


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.json")))
def test_an_event_survives_its_wire_form_unchanged(example):
    # What makes handing on ingest's event safe: consumers elsewhere parse the bytes, and
    # get the same event.
    event = parse_event((EXAMPLES / example).read_bytes())
    assert parse_event(encode_event(event)) == event
