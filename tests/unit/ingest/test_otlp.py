"""OTLP/JSON trace exports in each GenAI convention, mapped to completions on the bus."""

from __future__ import annotations

import gzip

import orjson
from ingest_helpers import client_for, published

from llmloop.events import parse_event
from llmloop_ingest.app import create_app
from llmloop_ingest.settings import IngestSettings

TRACE = "5b8efff798038103d269b633813fc60c"


def attr(key: str, value: object) -> dict:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


def span(span_id: str, attributes: list[dict], events: list[dict] | None = None) -> dict:
    return {
        "traceId": TRACE,
        "spanId": span_id,
        "parentSpanId": "eee19b7ec3c1b174",
        "name": "chat",
        "kind": 3,
        "startTimeUnixNano": "1763700000000000000",
        "endTimeUnixNano": "1763700000850000000",
        "attributes": attributes,
        "events": events or [],
    }


def export(*spans: dict) -> dict:
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [attr("service.name", "shop-bot")]},
                "scopeSpans": [{"scope": {"name": "test"}, "spans": list(spans)}],
            }
        ]
    }


MESSAGES_IN = '[{"role":"user","parts":[{"type":"text","content":"Where is my order?"}]}]'
MESSAGES_OUT = '[{"role":"assistant","parts":[{"type":"text","content":"It shipped."}]}]'


async def test_genai_spans_of_every_convention_become_completions(bus, keys, tmp_path):
    body = export(
        span(  # current convention: JSON messages in attributes
            "eee19b7ec3c1b173",
            [
                attr("gen_ai.operation.name", "chat"),
                attr("gen_ai.provider.name", "openai"),
                attr("gen_ai.request.model", "gpt-4o"),
                attr("gen_ai.response.model", "gpt-4o-2024-08-06"),
                attr("gen_ai.usage.input_tokens", 12),
                attr("gen_ai.usage.output_tokens", 3),
                attr("gen_ai.input.messages", MESSAGES_IN),
                attr("gen_ai.output.messages", MESSAGES_OUT),
                attr("user.id", "u-1"),
            ],
        ),
        span(  # span events per message (semconv 1.28-1.36)
            "eee19b7ec3c1b175",
            [attr("gen_ai.request.model", "llama"), attr("gen_ai.usage.prompt_tokens", 5)],
            [
                {"name": "gen_ai.system.message", "attributes": [attr("content", "Be brief.")]},
                {"name": "gen_ai.user.message", "attributes": [attr("content", "Hi")]},
                {"name": "gen_ai.choice", "attributes": [attr("message", '{"content":"Hello"}')]},
            ],
        ),
        span(  # OpenLLMetry-style indexed attributes
            "eee19b7ec3c1b176",
            [
                attr("gen_ai.request.model", "claude"),
                attr("gen_ai.prompt.0.role", "user"),
                attr("gen_ai.prompt.0.content", "Bonjour"),
                attr("gen_ai.completion.0.content", "Salut"),
            ],
        ),
        span("eee19b7ec3c1b177", [attr("http.method", "GET")]),  # not GenAI: skipped
    )
    app = create_app(IngestSettings(data_dir=tmp_path), bus=bus)
    async with client_for(app, keys["shop"]) as client:
        response = await client.post(
            "/v1/otlp/v1/traces",
            content=gzip.compress(orjson.dumps(body)),
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
        assert response.status_code == 200 and response.json() == {}
        again = await client.post("/v1/otlp/v1/traces", json=body)  # an exporter's retry
        assert again.status_code == 200
    events = [parse_event(m.value) for m in await published(bus)]
    first, second, third = events[:3]
    assert [e.event_id for e in events[3:]] == [e.event_id for e in events[:3]]  # same ids
    assert first.model == "gpt-4o-2024-08-06" and first.project_id == "shop"
    assert (first.prompt, first.completion) == ("Where is my order?", "It shipped.")
    assert (first.prompt_tokens, first.completion_tokens) == (12, 3)
    assert first.latency_ms == 850.0 and first.trace_id == TRACE
    assert first.parent_id == "eee19b7ec3c1b174" and first.user_id == "u-1"
    assert first.attributes == {"service": "shop-bot", "provider": "openai", "operation": "chat"}
    assert [(m.role, m.content) for m in second.prompt] == [("system", "Be brief."), ("user", "Hi")]
    assert second.completion == "Hello" and second.prompt_tokens == 5
    assert (third.model, third.prompt, third.completion) == ("claude", "Bonjour", "Salut")


async def test_invalid_spans_are_counted_in_partial_success(bus, keys, tmp_path):
    body = export(
        span(
            "eee19b7ec3c1b173",
            [attr("gen_ai.request.model", "m"), attr("gen_ai.usage.input_tokens", -1)],
        ),
        span(  # an inference by its operation name, content or not
            "eee19b7ec3c1b175",
            [attr("gen_ai.operation.name", "chat"), attr("gen_ai.request.model", "m")],
        ),
    )
    app = create_app(IngestSettings(data_dir=tmp_path), bus=bus)
    async with client_for(app, keys["shop"]) as client:
        response = await client.post("/v1/otlp/v1/traces", json=body)
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1" and "prompt_tokens" in partial["errorMessage"]
    assert len(await published(bus)) == 1


async def test_bad_otlp_bodies_are_4xx(bus, keys, tmp_path):
    app = create_app(IngestSettings(data_dir=tmp_path), bus=bus)
    async with client_for(app, keys["shop"]) as client:
        post = client.post
        assert (
            await post(
                "/v1/otlp/v1/traces",
                content=b"\xff\x00garbage",
                headers={"Content-Type": "application/x-protobuf"},
            )
        ).status_code == 400
        assert (
            await post(
                "/v1/otlp/v1/traces",
                content=b'{"resourceSpans": 3}',
                headers={"Content-Type": "application/json"},
            )
        ).status_code == 400
        assert (
            await post("/v1/otlp/v1/traces", content=b"x", headers={"Content-Type": "text/plain"})
        ).status_code == 415
    async with client_for(app) as client:
        assert (await client.post("/v1/otlp/v1/traces", json=export())).status_code == 401
