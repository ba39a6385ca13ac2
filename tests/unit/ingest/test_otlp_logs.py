"""OTLP logs (content events, evaluations), metrics, and the OTLP/HTTP error answers (issue 13)."""

from __future__ import annotations

import gzip

import orjson
from google.protobuf import json_format
from google.rpc import status_pb2
from ingest_helpers import client_for, published
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from test_otlp import TRACE, attr, export, span

from llmloop.events import CommentFeedback, CompletionContentLogged, parse_event
from llmloop_ingest.app import create_app
from llmloop_ingest.otlp import _hex_ids_to_base64, completion_id
from llmloop_ingest.settings import IngestSettings

SPAN = "eee19b7ec3c1b173"


def kv(**values: object) -> dict:
    return {
        "kvlistValue": {"values": [{"key": k, "value": anyvalue(v)} for k, v in values.items()]}
    }


def anyvalue(v: object) -> dict:
    if isinstance(v, dict):
        return kv(**v)
    if isinstance(v, list):
        return {"arrayValue": {"values": [anyvalue(x) for x in v]}}
    if isinstance(v, int):
        return {"intValue": str(v)}
    return {"stringValue": v}


def record(name: str, body: object | None = None, attributes: list | None = None, **ids) -> dict:
    out = {
        "timeUnixNano": "1763700000100000000",
        "eventName": name,
        "traceId": ids.get("trace", TRACE),
        "spanId": ids.get("span", SPAN),
        "attributes": attributes or [],
    }
    if body is not None:
        out["body"] = anyvalue(body)
    return out


def logs(*records: dict) -> dict:
    return {"resourceLogs": [{"scopeLogs": [{"logRecords": list(records)}]}]}


async def post(bus, keys, tmp_path, path: str, body: dict, **settings):
    app = create_app(IngestSettings(data_dir=tmp_path, **settings), bus=bus)
    async with client_for(app, keys["shop"]) as client:
        response = await client.post(path, json=body)
        scraped = (await client.get("/metrics")).text
    return response, [parse_event(m.value) for m in await published(bus)], scraped


async def test_deprecated_message_events_become_the_spans_content(bus, keys, tmp_path):
    body = logs(
        record("gen_ai.system.message", {"content": "Be brief."}),
        record("gen_ai.user.message", {"content": "true"}),
        record(
            "gen_ai.assistant.message",
            {
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ]
            },
        ),
        record("gen_ai.tool.message", {"content": "42", "id": "c1"}),
        record("gen_ai.choice", {"index": 1, "finish_reason": "stop", "message": {"content": "B"}}),
        record(
            "gen_ai.choice", {"index": 0, "finish_reason": "stop", "message": {"content": "{}"}}
        ),
        record("some.other.event", "ignored"),
        record("gen_ai.user.message", {"content": "lost"}, span=""),  # nothing to join to
    )
    response, (content,), scraped = await post(bus, keys, tmp_path, "/v1/otlp/v1/logs", body)
    assert response.json()["partialSuccess"]["rejectedLogRecords"] == "1"
    assert isinstance(content, CompletionContentLogged)
    assert content.completion_id == completion_id(TRACE, SPAN)  # the span's completion
    assert [(m.role, m.content) for m in content.prompt] == [
        ("system", "Be brief."),
        ("user", "true"),
        ("assistant", ""),
        ("tool", ""),
    ]
    assert content.prompt[2].parts[0].name == "f"
    assert (content.prompt[3].parts[0].type, content.prompt[3].parts[0].response) == (
        "tool_call_response",
        "42",
    )
    assert [c.content for c in content.choices] == ["{}", "B"]  # by index, verbatim
    assert 'llmloop_ingest_otlp_items_total{outcome="unjoinable",signal="logs"} 1.0' in scraped


async def test_inference_details_event_with_structured_messages(bus, keys, tmp_path):
    messages = [{"role": "user", "parts": [{"type": "text", "content": "null"}]}]
    out = [
        {"role": "assistant", "parts": [{"type": "text", "content": "ok"}], "finish_reason": "stop"}
    ]
    body = logs(
        record(
            "gen_ai.client.inference.operation.details",
            attributes=[
                {"key": "gen_ai.input.messages", "value": anyvalue(messages)},
                {"key": "gen_ai.output.messages", "value": anyvalue(out)},
                attr("gen_ai.request.model", "gpt-4o"),
            ],
        )
    )
    response, (content,), _ = await post(bus, keys, tmp_path, "/v1/otlp/v1/logs", body)
    assert response.json() == {}
    assert [(m.role, m.content) for m in content.prompt] == [("user", "null")]
    assert [(c.content, c.finish_reason) for c in content.choices] == [("ok", "stop")]
    assert content.model == "gpt-4o"


async def test_evaluation_log_records_become_feedback(bus, keys, tmp_path):
    body = logs(
        record(
            "gen_ai.evaluation.result",
            attributes=[
                attr("gen_ai.evaluation.name", "toxicity"),
                attr("gen_ai.evaluation.score.label", "pass"),
            ],
        ),
        {  # an older SDK: the event name as an attribute
            **record("gen_ai.evaluation.result"),
            "eventName": "",
            "attributes": [
                attr("event.name", "gen_ai.evaluation.result"),
                attr("gen_ai.evaluation.name", "stars"),
                attr("gen_ai.evaluation.score.value", 4),
            ],
        },
    )
    _, (label, stars), _ = await post(bus, keys, tmp_path, "/v1/otlp/v1/logs", body)
    assert isinstance(label, CommentFeedback)
    assert (label.evaluation, label.label, label.comment, label.source) == (
        "toxicity",
        "pass",
        "pass",
        "judge",
    )
    assert (stars.value, stars.scale_min, stars.scale_max) == (4.0, 0, 4)
    assert label.completion_id == stars.completion_id == completion_id(TRACE, SPAN)


async def test_metrics_are_acknowledged(bus, keys, tmp_path):
    body = {
        "resourceMetrics": [
            {
                "scopeMetrics": [
                    {
                        "metrics": [
                            {
                                "name": "gen_ai.client.token.usage",
                                "histogram": {"dataPoints": [{"count": "1", "sum": 12}]},
                            }
                        ]
                    }
                ]
            }
        ]
    }
    response, events, scraped = await post(bus, keys, tmp_path, "/v1/otlp/v1/metrics", body)
    assert (response.status_code, response.json(), events) == (200, {}, [])
    assert 'llmloop_ingest_otlp_items_total{outcome="acknowledged",signal="metrics"} 1.0' in scraped


async def test_errors_are_google_rpc_status_bodies(bus, keys, tmp_path):
    app = create_app(IngestSettings(data_dir=tmp_path, otlp_max_body_bytes=1000), bus=bus)
    async with client_for(app, keys["shop"]) as client:
        too_big = await client.post(
            "/v1/otlp/v1/traces",
            content=b"\x00" * 2000,
            headers={"Content-Type": "application/x-protobuf"},
        )
        bad_json = await client.post(
            "/v1/otlp/v1/logs", content=b"[1]", headers={"Content-Type": "application/json"}
        )
    async with client_for(app) as client:
        no_key = await client.post(
            "/v1/otlp/v1/traces", content=b"", headers={"Content-Type": "application/x-protobuf"}
        )
    status = status_pb2.Status.FromString(too_big.content)
    assert too_big.status_code == 413 and "1000 bytes" in status.message and status.code == 8
    assert bad_json.status_code == 400 and "logs export" in bad_json.json()["message"]
    assert no_key.status_code == 401 and status_pb2.Status.FromString(no_key.content).code == 16


async def test_the_sdk_default_batch_of_512_long_spans_is_accepted(bus, keys, tmp_path):
    long_prompt = "Summarise this contract clause by clause. " * 500  # ~21 KB
    messages = orjson.dumps([{"role": "user", "parts": [{"type": "text", "content": long_prompt}]}])
    spans = [
        span(
            f"{i + 1:016x}",
            [
                attr("gen_ai.operation.name", "chat"),
                attr("gen_ai.request.model", "gpt-4o"),
                attr("gen_ai.input.messages", messages.decode()),
                attr("gen_ai.output.messages", messages.decode()),
            ],
        )
        for i in range(512)
    ]
    request = ExportTraceServiceRequest()
    data = export(*spans)
    _hex_ids_to_base64(data)
    json_format.ParseDict(data, request)
    body = request.SerializeToString()
    assert len(body) > 5 * 1024 * 1024  # over the old limit
    app = create_app(IngestSettings(data_dir=tmp_path), bus=bus)
    async with client_for(app, keys["shop"]) as client:
        response = await client.post(
            "/v1/otlp/v1/traces",
            content=gzip.compress(body, 1),
            headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
        )
    assert response.status_code == 200 and response.content == b""
    events = [parse_event(m.value) for m in await published(bus)]
    assert len(events) == 512 and events[0].prompt == long_prompt


async def test_an_evaluation_naming_only_a_response_is_kept_for_the_writer_to_join(
    bus, keys, tmp_path
):
    body = logs(
        record(
            "gen_ai.evaluation.result",
            attributes=[
                attr("gen_ai.evaluation.name", "helpful"),
                attr("gen_ai.evaluation.score.label", "yes"),
                attr("gen_ai.response.id", "chatcmpl-5"),
            ],
            span="",
        ),
        record(
            "gen_ai.evaluation.result", attributes=[attr("gen_ai.evaluation.name", "x")], span=""
        ),
    )
    response, (feedback,), _ = await post(bus, keys, tmp_path, "/v1/otlp/v1/logs", body)
    assert response.json()["partialSuccess"]["rejectedLogRecords"] == "1"  # names nothing
    assert feedback.metadata["gen_ai.response.id"] == "chatcmpl-5"
    assert (feedback.evaluation, feedback.label) == ("helpful", "yes")
