"""GenAI spans of each convention and instrumentation, mapped field by field (issue 13)."""

from __future__ import annotations

import orjson
from ingest_helpers import client_for, published
from test_otlp import TRACE, attr, export, span

from llmloop.events import CompletionLogged, ScoreFeedback, parse_event
from llmloop_ingest.app import create_app
from llmloop_ingest.settings import IngestSettings


def js(value: object) -> str:
    return orjson.dumps(value).decode()


def text(content: str) -> dict:
    return {"type": "text", "content": content}


async def send(bus, keys, tmp_path, body: dict, path: str = "/v1/otlp/v1/traces"):
    app = create_app(IngestSettings(data_dir=tmp_path), bus=bus)
    async with client_for(app, keys["shop"]) as client:
        response = await client.post(path, json=body)
        scraped = (await client.get("/metrics")).text
    return response, [parse_event(m.value) for m in await published(bus)], scraped


def chat(span_id: str, *attributes: dict, operation: str = "chat") -> dict:
    return span(
        span_id,
        [
            attr("gen_ai.operation.name", operation),
            attr("gen_ai.request.model", "gpt-4o"),
            *attributes,
        ],
    )


async def test_text_that_looks_like_json_is_kept_verbatim(bus, keys, tmp_path):
    spans = [
        chat(
            f"{i:016x}",
            attr("gen_ai.input.messages", js([{"role": "user", "parts": [text(prompt)]}])),
            attr("gen_ai.output.messages", js([{"role": "assistant", "parts": [text(answer)]}])),
        )
        for i, (prompt, answer) in enumerate(
            [("true", "null"), ('{"q":"x"}', '{"answer": 42, "why": "json mode"}'), ("[1, 2]", "3")]
        )
    ]
    _, events, _ = await send(bus, keys, tmp_path, export(*spans))
    assert [(e.prompt, e.completion) for e in events] == [
        ("true", "null"),
        ('{"q":"x"}', '{"answer": 42, "why": "json mode"}'),
        ("[1, 2]", "3"),
    ]


async def test_tool_calls_results_reasoning_blobs_and_uris_are_structured_parts(
    bus, keys, tmp_path
):
    messages_in = [
        {"role": "system", "parts": [text("Be brief.")]},
        {
            "role": "user",
            "parts": [
                text("What is on this picture, and the weather?"),
                {
                    "type": "blob",
                    "modality": "image",
                    "mime_type": "image/png",
                    "content": "iVBORw0K",
                },
                {"type": "uri", "modality": "image", "uri": "https://example.test/cat.png"},
            ],
        },
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "call_1",
                    "name": "weather",
                    "arguments": {"city": "Paris"},
                }
            ],
        },
        {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": "call_1", "response": "rain"}],
        },
    ]
    messages_out = [
        {
            "role": "assistant",
            "parts": [
                {"type": "reasoning", "content": "The tool said rain."},
                text("A cat. Rain."),
            ],
            "finish_reason": "stop",
        },
        {"role": "assistant", "parts": [text("Cat; rainy.")], "finish_reason": "length"},
    ]
    body = export(
        chat(
            "eee19b7ec3c1b173",
            attr("gen_ai.input.messages", js(messages_in)),
            attr("gen_ai.output.messages", js(messages_out)),
        )
    )
    _, (event,), _ = await send(bus, keys, tmp_path, body)
    assert isinstance(event, CompletionLogged)
    system, user, assistant, tool = event.prompt
    assert (system.role, system.content, system.parts) == ("system", "Be brief.", None)
    assert user.content == "What is on this picture, and the weather?"  # text parts only
    assert [p.type for p in user.parts] == ["text", "blob", "uri"]
    assert (user.parts[1].mime_type, user.parts[1].content) == ("image/png", "iVBORw0K")
    assert user.parts[2].uri == "https://example.test/cat.png"
    call = assistant.parts[0]
    assert (assistant.content, call.type, call.id, call.name) == (
        "",
        "tool_call",
        "call_1",
        "weather",
    )
    assert orjson.loads(call.arguments) == {"city": "Paris"}
    assert (tool.parts[0].type, tool.parts[0].response) == ("tool_call_response", "rain")
    # n = 2 choices kept apart; the reasoning is not glued into the answer.
    assert event.completion == "A cat. Rain."
    assert [c.content for c in event.choices] == ["A cat. Rain.", "Cat; rainy."]
    assert event.choices[0].parts[0].content == "The tool said rain."
    assert event.finish_reasons == ["stop", "length"]


async def test_only_inference_spans_become_completions(bus, keys, tmp_path):
    body = export(
        chat("0000000000000001", operation="invoke_agent"),  # wraps the chat below
        chat(
            "0000000000000002",
            attr("gen_ai.input.messages", js([{"role": "user", "parts": [text("hi")]}])),
        ),
        chat("0000000000000003", operation="embeddings"),
        chat("0000000000000004", operation="execute_tool"),
        span("0000000000000005", [attr("traceloop.span.kind", "workflow")]),
        span("0000000000000006", [attr("openinference.span.kind", "RETRIEVER")]),
        span("0000000000000007", [attr("http.method", "GET")]),
    )
    _, events, scraped = await send(bus, keys, tmp_path, body)
    assert [(e.span_id, e.prompt) for e in events] == [("0000000000000002", "hi")]
    assert 'llmloop_ingest_otlp_items_total{outcome="context",signal="traces"} 5.0' in scraped
    assert 'llmloop_ingest_otlp_items_total{outcome="not_genai",signal="traces"} 1.0' in scraped


async def test_failed_calls_are_errors_not_empty_answers(bus, keys, tmp_path):
    prompt = attr("gen_ai.input.messages", js([{"role": "user", "parts": [text("hi")]}]))
    failed = chat("0000000000000001", prompt, attr("error.type", "RateLimitError"))
    status_only = chat("0000000000000002", prompt)
    status_only["status"] = {"code": 2, "message": "boom"}
    status_only["events"] = [
        {"name": "exception", "attributes": [attr("exception.type", "openai.APIConnectionError")]}
    ]
    _, events, _ = await send(bus, keys, tmp_path, export(failed, status_only))
    assert [(e.error_type, e.completion, e.prompt) for e in events] == [
        ("RateLimitError", "", "hi"),
        ("openai.APIConnectionError", "", "hi"),
    ]


async def test_fields_and_their_older_spellings(bus, keys, tmp_path):
    body = export(
        chat(  # latest names
            "0000000000000001",
            attr("gen_ai.response.model", "gpt-4o-2024-08-06"),
            attr("gen_ai.response.id", "chatcmpl-1"),
            attr("gen_ai.usage.input_tokens", 100),
            attr("gen_ai.usage.output_tokens", 20),
            attr("gen_ai.usage.cache_read.input_tokens", 60),
            attr("gen_ai.usage.cache_creation.input_tokens", 10),
            attr("gen_ai.usage.reasoning.output_tokens", 5),
            {
                "key": "gen_ai.response.finish_reasons",
                "value": {"arrayValue": {"values": [{"stringValue": "stop"}]}},
            },
            attr("gen_ai.conversation.id", "conv-1"),
            attr("session.id", "session-1"),  # the conventions' own id wins
            attr("gen_ai.request.user", "u-7"),
        ),
        span(  # OpenLLMetry: gen_ai.system, prompt_tokens, underscore cache names, no model
            "0000000000000002",
            [
                attr("llm.request.type", "chat"),
                attr("gen_ai.system", "openai"),
                attr("gen_ai.usage.prompt_tokens", 50),
                attr("gen_ai.usage.completion_tokens", 7),
                attr("gen_ai.usage.cache_read_input_tokens", 30),
                attr("gen_ai.usage.cache_creation_input_tokens", 4),
                attr("traceloop.association.properties.user_id", "u-8"),
                attr("traceloop.association.properties.session_id", "s-8"),
                attr("gen_ai.prompt.0.role", "user"),
                attr("gen_ai.prompt.0.content", "true"),
                attr("gen_ai.completion.0.role", "assistant"),
                attr("gen_ai.completion.0.finish_reason", "tool_calls"),
                attr("gen_ai.completion.0.tool_calls.0.id", "call_9"),
                attr("gen_ai.completion.0.tool_calls.0.name", "lookup"),
                attr("gen_ai.completion.0.tool_calls.0.arguments", '{"q": "x"}'),
            ],
        ),
    )
    _, (latest, traceloop), _ = await send(bus, keys, tmp_path, body)
    assert (latest.model, latest.request_model, latest.response_model) == (
        "gpt-4o-2024-08-06",
        "gpt-4o",
        "gpt-4o-2024-08-06",
    )
    assert (latest.response_id, latest.finish_reasons) == ("chatcmpl-1", ["stop"])
    assert (latest.prompt_tokens, latest.completion_tokens) == (100, 20)
    assert (latest.cache_read_tokens, latest.cache_write_tokens, latest.reasoning_tokens) == (
        60,
        10,
        5,
    )
    assert (latest.session_id, latest.user_id) == ("conv-1", "u-7")
    assert traceloop.model == "unknown"  # kept, not dropped
    assert traceloop.attributes["provider"] == "openai"
    assert (traceloop.prompt_tokens, traceloop.cache_read_tokens, traceloop.cache_write_tokens) == (
        50,
        30,
        4,
    )
    assert (traceloop.user_id, traceloop.session_id, traceloop.prompt) == ("u-8", "s-8", "true")
    call = traceloop.choices[0].parts[0]
    assert (call.type, call.id, call.name, call.arguments) == (
        "tool_call",
        "call_9",
        "lookup",
        '{"q": "x"}',
    )
    assert traceloop.finish_reasons == ["tool_calls"]


async def test_openinference_spans_are_read(bus, keys, tmp_path):
    body = export(
        span(
            "0000000000000001",
            [
                attr("openinference.span.kind", "LLM"),
                attr("llm.model_name", "gpt-4o-mini-2024-07-18"),
                attr("llm.provider", "openai"),
                attr("llm.input_messages.0.message.role", "system"),
                attr("llm.input_messages.0.message.content", "Be kind."),
                attr("llm.input_messages.1.message.role", "user"),
                attr("llm.input_messages.1.message.contents.0.message_content.type", "text"),
                attr("llm.input_messages.1.message.contents.0.message_content.text", "null"),
                attr("llm.output_messages.0.message.role", "assistant"),
                attr("llm.output_messages.0.message.content", "Hello!"),
                attr("llm.token_count.prompt", 11),
                attr("llm.token_count.completion", 2),
                attr("llm.token_count.prompt_details.cache_read", 8),
                attr("llm.token_count.completion_details.reasoning", 1),
                attr("session.id", "s-1"),
                attr("user.id", "u-1"),
            ],
        )
    )
    response, (event,), _ = await send(bus, keys, tmp_path, body)
    assert response.json() == {}
    assert event.model == "gpt-4o-mini-2024-07-18"
    assert [(m.role, m.content) for m in event.prompt] == [("system", "Be kind."), ("user", "null")]
    assert event.completion == "Hello!"
    assert (event.prompt_tokens, event.completion_tokens) == (11, 2)
    assert (event.cache_read_tokens, event.reasoning_tokens) == (8, 1)
    assert (event.session_id, event.user_id, event.attributes["provider"]) == (
        "s-1",
        "u-1",
        "openai",
    )


async def test_two_instrumentations_on_one_call_store_it_once(bus, keys, tmp_path):
    outer = chat("0000000000000001", attr("gen_ai.response.id", "chatcmpl-9"))
    inner = chat(
        "0000000000000002",
        attr("gen_ai.response.id", "chatcmpl-9"),
        attr("gen_ai.input.messages", js([{"role": "user", "parts": [text("hi")]}])),
    )
    _, events, scraped = await send(bus, keys, tmp_path, export(outer, inner))
    assert [(e.span_id, e.prompt) for e in events] == [("0000000000000002", "hi")]  # the richer
    assert 'llmloop_ingest_otlp_items_total{outcome="duplicate",signal="traces"} 1.0' in scraped


async def test_evaluation_span_events_become_judge_feedback(bus, keys, tmp_path):
    judged = chat("0000000000000001")
    judged["events"] = [
        {
            "name": "gen_ai.evaluation.result",
            "timeUnixNano": "1763700000900000000",
            "attributes": [
                attr("gen_ai.evaluation.name", "relevance"),
                {"key": "gen_ai.evaluation.score.value", "value": {"doubleValue": 0.25}},
                attr("gen_ai.evaluation.score.label", "irrelevant"),
                attr("gen_ai.evaluation.explanation", "Off topic."),
            ],
        }
    ]
    _, (completion, feedback), _ = await send(bus, keys, tmp_path, export(judged))
    assert isinstance(feedback, ScoreFeedback) and feedback.source == "judge"
    assert feedback.completion_id == completion.event_id
    assert (feedback.evaluation, feedback.label, feedback.value) == (
        "relevance",
        "irrelevant",
        0.25,
    )
    assert feedback.comment == "Off topic."
    assert feedback.metadata["otel.trace_id"] == TRACE


async def test_a_failed_call_recorded_by_two_instrumentations_is_stored_once(bus, keys, tmp_path):
    outer = chat("0000000000000001", attr("error.type", "RateLimitError"))
    inner = chat("0000000000000002", attr("error.type", "openai.RateLimitError"))
    inner["parentSpanId"] = "0000000000000001"  # the second instrumentation's span
    agent = chat("0000000000000003", operation="invoke_agent")
    inside_agent = chat("0000000000000004")
    inside_agent["parentSpanId"] = "0000000000000003"  # an agent's call is its own
    _, events, _ = await send(bus, keys, tmp_path, export(outer, inner, agent, inside_agent))
    assert [e.span_id for e in events] == ["0000000000000001", "0000000000000004"]
