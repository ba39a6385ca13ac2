"""The SDK against the real ingest API over HTTP: batching, every feedback kind, retries,
the spool through an outage and across a client restart, and never raising into the app."""

from __future__ import annotations

import logging
import uuid

import httpx
import orjson
import pytest
from sdk_helpers import Collector

from llmloop import AsyncClient, Client
from llmloop.events import parse_event
from llmloop.testing.server import ServedApp

FAST = {"flush_interval_s": 0.05, "backoff_s": 0.01, "max_backoff_s": 0.05, "timeout_s": 2}


def log_all_kinds(client: Client | AsyncClient) -> tuple[str, str, list[str]]:
    a = client.log_completion(
        model="gpt-4o-mini",
        prompt=[{"role": "user", "content": "Where is my order?"}],
        completion="It shipped.",
        prompt_tokens=7,
        attributes={"locale": "de-DE"},
    )
    b = client.log_completion(model="gpt-4o-mini", prompt="Where is it?", completion="No idea.")
    feedback = [
        client.feedback(a, "thumbs", True),
        client.feedback(b, "thumbs", -1),
        client.feedback(a, "score", 4, scale_min=1, scale_max=5),
        client.feedback(b, "comment", "unhelpful"),
        client.feedback(b, "correction", "It left the warehouse yesterday.", source="annotator"),
        client.feedback(None, "preference", chosen_id=a, rejected_id=b, source="judge"),
    ]
    return a, b, feedback


def check_all_kinds(collector: Collector, a: str, b: str, feedback: list[str]) -> None:
    events = {str(e.event_id): e for e in map(parse_event, collector.events())}
    assert set(events) == {a, b, *feedback}
    assert events[a].prompt_tokens == 7 and events[a].attributes == {"locale": "de-DE"}
    assert {e.project_id for e in events.values()} == {"shop"}
    kinds = [(events[f].kind, str(events[f].completion_id)) for f in feedback]
    assert kinds == [
        ("thumbs", a),
        ("thumbs", b),
        ("score", a),
        ("comment", b),
        ("correction", b),
        ("preference", a),  # keyed by the chosen completion
    ]
    assert events[feedback[0]].value == 1 and events[feedback[1]].value == -1


def test_client_sends_completions_and_every_feedback_kind(collector, tmp_path):
    with Client(collector.url, collector.key, spool_dir=tmp_path / "spool", **FAST) as client:
        a, b, feedback = log_all_kinds(client)
        assert client.flush(10)
    check_all_kinds(collector, a, b, feedback)


async def test_async_client_sends_completions_and_every_feedback_kind(collector, tmp_path):
    async with AsyncClient(
        collector.url, collector.key, spool_dir=tmp_path / "spool", **FAST
    ) as client:
        a, b, feedback = log_all_kinds(client)
        assert await client.flush(10)
    check_all_kinds(collector, a, b, feedback)


def test_an_invalid_event_is_logged_never_raised(collector, tmp_path, caplog):
    with Client(collector.url, collector.key, spool_dir=tmp_path / "spool", **FAST) as client:
        event_id = client.log_completion(model="", prompt="p", completion="c")
        client.feedback(str(uuid.uuid4()), "thumbs", 7)
        assert client.flush(5)
    assert uuid.UUID(event_id)
    assert collector.events() == []
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert any(event_id in m and "model" in m for m in dropped)
    assert any(": value:" in m for m in dropped)


@pytest.mark.parametrize("failures", [[503, 503], [429, 502]])
def test_transient_errors_are_retried(collector, tmp_path, failures):
    answers = list(failures)
    seen: list[int] = []

    async def flaky(scope, receive, send):  # the real API behind a proxy that fails first
        if scope["type"] == "http" and scope["path"] == "/v1/events" and answers:
            status = answers.pop(0)
            seen.append(status)
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(b"retry-after", b"0")],
                }
            )
            await send({"type": "http.response.body", "body": b"{}"})
            return
        await collector.app(scope, receive, send)

    with (
        ServedApp(flaky) as proxy,
        Client(proxy.url, collector.key, spool_dir=tmp_path / "spool", **FAST) as client,
    ):
        ids = [client.log_completion(model="m", prompt="p", completion=str(i)) for i in range(5)]
        assert client.flush(10)
        assert client.spool is not None and client.spool.count() == 0
    assert seen == failures
    assert sorted(str(parse_event(v).event_id) for v in collector.events()) == sorted(ids)


def test_the_spool_carries_events_through_an_outage_and_a_client_restart(tmp_path, caplog):
    caplog.set_level(logging.INFO, "llmloop.sdk")
    down = Collector(tmp_path / "server")
    spool = tmp_path / "spool"
    try:
        # The collector is not listening: every batch ends on disk, the app never notices.
        client = Client(down.url, down.key, spool_dir=spool, batch_size=10, max_queue=20, **FAST)
        ids = [client.log_completion(model="m", prompt="p", completion=str(i)) for i in range(45)]
        assert not client.flush(0.5)
        client.close(timeout_s=0.5)
        assert client.pending() > 0 and down.events() == []
        # A new process (a new client on the same spool) delivers once the collector is back.
        down.served.start()
        with Client(down.url, down.key, spool_dir=spool, **FAST) as restarted:
            assert restarted.flush(10)
            assert restarted.pending() == 0
        sent = [str(parse_event(v).event_id) for v in down.events()]
        assert sorted(sent) == sorted(ids)  # every event, each exactly once
    finally:
        down.close()


def test_a_refused_key_keeps_events_on_disk(collector, tmp_path, caplog):
    with Client(collector.url, "llk_wrong", spool_dir=tmp_path / "spool", **FAST) as client:
        client.log_completion(model="m", prompt="p", completion="c")
        assert not client.flush(0.5)
    assert client.pending() == 1
    assert any("refused the API key" in r.getMessage() for r in caplog.records)


def test_a_batch_over_the_server_limit_is_split(tmp_path):
    c = Collector(tmp_path / "server", max_batch_events=4)
    c.served.start()
    try:
        with Client(c.url, c.key, spool_dir=tmp_path / "spool", batch_size=50, **FAST) as client:
            for i in range(11):
                client.log_completion(model="m", prompt="p", completion=str(i))
            assert client.flush(10)
        assert len(c.events()) == 11
    finally:
        c.close()


def test_requests_are_gzip_with_the_key(collector, tmp_path):
    seen: list[httpx.Headers] = []

    async def spy(scope, receive, send):
        if scope["type"] == "http":
            seen.append(httpx.Headers([(k.decode(), v.decode()) for k, v in scope["headers"]]))
        await collector.app(scope, receive, send)

    with (
        ServedApp(spy) as proxy,
        Client(proxy.url, collector.key, spool_dir=tmp_path / "spool", **FAST) as client,
    ):
        client.log_completion(model="m", prompt="p", completion="c")
        assert client.flush(5)
    assert seen[0]["content-encoding"] == "gzip"
    assert seen[0]["authorization"] == f"Bearer {collector.key}"
    assert orjson.loads(collector.events()[0])["model"] == "m"
