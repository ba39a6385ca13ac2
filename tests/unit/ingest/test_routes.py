"""POST /v1/events on real requests: status codes, error bodies, what reaches the bus."""

from __future__ import annotations

import gzip
import uuid
from pathlib import Path

import httpx
import orjson
import pytest

from llmloop import topics
from llmloop.bus import open_bus
from llmloop.bus.local import LocalLogBus
from llmloop.events import parse_event
from llmloop.settings import Settings
from llmloop_ingest.app import create_app


def completion(**extra) -> dict:
    return {
        "type": "completion",
        "event_id": str(uuid.uuid4()),
        "model": "m",
        "prompt": "p",
        "completion": "c",
        **extra,
    }


@pytest.fixture
async def bus():
    bus = open_bus("memory://")
    await bus.start()
    yield bus
    await bus.close()


def client_for(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.fixture
async def client(bus):
    settings = Settings(max_batch_events=5, max_body_bytes=20_000)
    async with client_for(create_app(settings, bus=bus)) as client:
        yield client


async def published(bus: LocalLogBus) -> list:
    consumer = bus.consumer([topics.EVENTS], "test")
    await consumer.start()
    return await consumer.poll(100, 0.01)


async def test_valid_batch_is_202_and_on_the_bus_keyed_by_completion(client, bus):
    c = completion(project_id="someone-else")
    f = {
        "type": "feedback",
        "kind": "thumbs",
        "value": 1,
        "event_id": str(uuid.uuid4()),
        "completion_id": c["event_id"],
    }
    response = await client.post("/v1/events", json={"events": [c, f]})
    assert response.status_code == 202
    assert response.json() == {"accepted": 2, "rejected": 0, "errors": []}
    messages = await published(bus)
    assert [m.key for m in messages] == [uuid.UUID(c["event_id"]).bytes] * 2
    events = [parse_event(m.value) for m in messages]
    assert [e.type for e in events] == ["completion", "feedback"]
    assert {e.project_id for e in events} == {"default"}  # never the body's


async def test_partly_invalid_batch_is_207_naming_index_and_field(client, bus):
    bad = completion(prompt_tokens=-5)
    response = await client.post(
        "/v1/events", json={"events": [completion(), bad, {"type": "completion"}]}
    )
    assert response.status_code == 207
    body = response.json()
    assert body["accepted"] == 1 and body["rejected"] == 2
    first = body["errors"][0]
    assert first["index"] == 1 and first["event_id"] == bad["event_id"]
    assert first["field"] == "prompt_tokens" and "greater than or equal to 0" in first["message"]
    assert {e["index"] for e in body["errors"]} == {1, 2}
    assert body["errors"][-1]["field"] == "event_id"
    assert len(await published(bus)) == 1


async def test_all_invalid_is_422_and_nothing_published(client, bus):
    response = await client.post("/v1/events", json={"events": [completion(model="")]})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "model"
    assert await published(bus) == []


@pytest.mark.parametrize(
    ("body", "headers", "status", "says"),
    [
        (b"{not json", {}, 400, "not valid JSON"),
        (b'[{"type": "completion"}]', {}, 400, '{"events": [...]}'),
        (b'{"events": {}}', {}, 400, '{"events": [...]}'),
        (b"\x1f\x8b garbage", {"Content-Encoding": "gzip"}, 400, "gzip"),
        (orjson.dumps({"events": [completion() for _ in range(6)]}), {}, 413, "limit is 5"),
        (b"x" * 20_001, {}, 413, "larger than 20000"),
        (gzip.compress(b" " * 50_000), {"Content-Encoding": "gzip"}, 413, "larger than"),
    ],
)
async def test_bad_bodies_get_a_4xx_that_says_why(client, bus, body, headers, status, says):
    response = await client.post("/v1/events", content=body, headers=headers)
    assert response.status_code == status
    assert says in response.json()["error"]
    assert await published(bus) == []


async def test_gzip_bodies_are_accepted(client, bus):
    body = gzip.compress(orjson.dumps({"events": [completion(), completion()]}))
    response = await client.post("/v1/events", content=body, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 202
    assert len(await published(bus)) == 2


async def test_bus_down_is_503_with_retry_after_and_nothing_accepted(tmp_path: Path):
    down = open_bus(f"sqlite:///{tmp_path}/never-started.db")  # a real log that is not open
    async with client_for(create_app(Settings(), bus=down)) as client:
        response = await client.post("/v1/events", json={"events": [completion()]})
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert response.json()["accepted"] == 0
        assert (await client.get("/readyz")).status_code == 503
        assert (await client.get("/healthz")).status_code == 200


async def test_ready_when_the_bus_answers(client):
    response = await client.get("/readyz")
    assert response.status_code == 200 and response.json() == {"status": "ready"}
