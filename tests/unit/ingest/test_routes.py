"""POST /v1/events on real requests: status codes, error bodies, what reaches the bus."""

from __future__ import annotations

import gzip
import uuid
from pathlib import Path

import orjson
import pytest
from ingest_helpers import client_for, published

from llmloop.bus import open_bus
from llmloop.events import parse_event
from llmloop.testing.server import completion
from llmloop_ingest.app import create_app
from llmloop_ingest.settings import IngestSettings


@pytest.fixture
def settings(tmp_path: Path) -> IngestSettings:
    return IngestSettings(data_dir=tmp_path, max_batch_events=5, max_body_bytes=20_000)


@pytest.fixture
async def client(bus, keys, settings):
    async with client_for(create_app(settings, bus=bus), keys["shop"]) as client:
        yield client


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
    assert {e.project_id for e in events} == {"shop"}  # the key's, never the body's


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
        (gzip.compress(b'{"events": []}')[:-6], {"Content-Encoding": "gzip"}, 400, "gzip"),
        (b"{}", {"Content-Encoding": "br"}, 415, "'br' is not supported"),
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


async def test_bus_down_is_503_with_retry_after_naming_what_was_not_accepted(tmp_path, keys):
    down = open_bus(f"sqlite:///{tmp_path}/never-started.db")  # a real log that is not open
    app = create_app(IngestSettings(data_dir=tmp_path, retry_after_s=7), bus=down)
    async with client_for(app, keys["shop"]) as client:
        good, bad = completion(), completion(model="")
        response = await client.post("/v1/events", json={"events": [good, bad]})
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "7"
        body = response.json()
        assert body["accepted"] == 0 and body["not_accepted"] == [good["event_id"]]
        assert body["errors"][0]["index"] == 1  # and why the other one would never be
        assert (await client.get("/readyz")).status_code == 503
        assert (await client.get("/healthz")).status_code == 200
        metrics = (await client.get("/metrics")).text
        assert "llmloop_ingest_bus_errors_total 1.0" in metrics
        assert 'llmloop_ingest_events_rejected_total{reason="bus_unavailable"} 1.0' in metrics


async def test_ready_when_the_bus_answers(client):
    response = await client.get("/readyz")
    assert response.status_code == 200 and response.json() == {"status": "ready"}


async def test_metrics_count_requests_and_events_by_outcome(client):
    await client.post("/v1/events", json={"events": [completion(), completion(model="")]})
    await client.post("/v1/events", content=b"{nope")
    await client.post("/nowhere/" + "x" * 50)
    text = (await client.get("/metrics")).text
    assert 'llmloop_ingest_events_accepted_total{type="completion"} 1.0' in text
    assert 'llmloop_ingest_events_rejected_total{reason="invalid"} 1.0' in text
    assert 'llmloop_ingest_events_rejected_total{reason="bad_body"} 1.0' in text
    assert 'llmloop_ingest_requests_total{path="/v1/events",status="207"} 1.0' in text
    assert 'path="other"' in text and "xxxxx" not in text  # unknown paths never become labels
    assert 'llmloop_ingest_request_seconds_count{path="/v1/events"} 2.0' in text
