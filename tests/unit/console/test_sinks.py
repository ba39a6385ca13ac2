"""The stand-alone console's sink posts judgments to the real ingest app, with the project's key."""

from __future__ import annotations

import uuid

import httpx
import pytest

from llmloop import topics
from llmloop.bus.memory import memory_bus
from llmloop.events import parse_event
from llmloop_console.ports import SinkError
from llmloop_console.sinks import HttpSink, parse_keys
from llmloop_ingest.app import create_app
from llmloop_ingest.auth import ApiKeys
from llmloop_ingest.keys import KeyStore


async def test_a_judgment_lands_on_the_bus_for_the_keys_project(tmp_path):
    keys = KeyStore(tmp_path / "keys.db")
    key, _ = keys.create("shop")
    bus = memory_bus()
    await bus.start()
    app = create_app(bus=bus, authenticator=ApiKeys(keys))
    sink = HttpSink("http://ingest", {"shop": key}, transport=httpx.ASGITransport(app=app))
    chosen, rejected = str(uuid.uuid4()), str(uuid.uuid4())
    event = {
        "type": "feedback",
        "event_id": str(uuid.uuid4()),
        "kind": "preference",
        "chosen_id": chosen,
        "rejected_id": rejected,
        "source": "annotator",
    }
    answer = await sink.submit("shop", [event])
    assert answer["accepted"] == 1
    consumer = bus.consumer([topics.EVENTS], "test")
    await consumer.start()
    (message,) = await consumer.poll(10, 0.1)
    published = parse_event(message.value)
    assert published.project_id == "shop" and str(published.chosen_id) == chosen
    with pytest.raises(SinkError, match="no ingest key"):
        await sink.submit("other", [event])
    await bus.close()


def test_keys_parse_and_refuse_malformed_entries():
    assert parse_keys("a=llk_1, b=llk_2") == {"a": "llk_1", "b": "llk_2"}
    with pytest.raises(ValueError, match="PROJECT=KEY"):
        parse_keys("a")
