"""The writer joins content from OTLP logs to its completion, whichever comes first, and
drops a second copy of one provider response (issue 13)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson

from llmloop.events import (
    ChatMessage,
    CompletionContentLogged,
    CompletionLogged,
    MessagePart,
)
from llmloop_processor.enrichment import DEFAULT_PRICES, cost_usd
from llmloop_processor.writer import StoreWriter

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def span_completion(n: int, **fields) -> CompletionLogged:
    values = {
        "event_id": uuid.UUID(int=n),
        "project_id": "shop",
        "timestamp": T0,
        "model": "gpt-4o",
        "prompt": "",
        "completion": "",
        "trace_id": "t" * 32,
        "span_id": f"{n:016x}",
        **fields,
    }
    return CompletionLogged(**values)


def content(n: int, seconds: float = 0.1) -> CompletionContentLogged:
    return CompletionContentLogged(
        event_id=uuid.uuid4(),
        project_id="shop",
        timestamp=T0 + timedelta(seconds=seconds),
        completion_id=uuid.UUID(int=n),
        prompt=[ChatMessage(role="user", content="true")],
        choices=[
            ChatMessage(
                role="assistant",
                content="",
                parts=[MessagePart(type="tool_call", id="c1", name="f", arguments="{}")],
                finish_reason="tool_calls",
            )
        ],
    )


def rows(store) -> dict[str, tuple]:
    found = store.query(
        "SELECT event_id, prompt, prompt_format, completion, choices, finish_reasons "
        "FROM completions ORDER BY event_id"
    ).rows
    return {str(r[0]): tuple(r[1:]) for r in found}


def test_content_first_is_merged_into_the_completion(store):
    writer = StoreWriter(store)
    writer.write([content(1)])
    writer.write([span_completion(1), span_completion(2)])
    got = rows(store)
    prompt, fmt, text, choices, reasons = got[str(uuid.UUID(int=1))]
    assert (prompt, fmt, text, reasons) == ("true", "text", "", ["tool_calls"])
    assert orjson.loads(choices)[0]["parts"][0]["name"] == "f"
    assert got[str(uuid.UUID(int=2))][0] == ""  # no content came for it


def test_content_in_the_same_batch_or_after_is_merged_too(store):
    writer = StoreWriter(store)
    writer.write([span_completion(1), content(1)])  # one batch
    writer.write([span_completion(2)])
    writer.write([content(2)])  # after its completion was stored
    writer.write([content(2)])  # a redelivery changes nothing
    got = rows(store)
    assert got[str(uuid.UUID(int=1))][0] == "true"
    assert got[str(uuid.UUID(int=2))][0] == "true" and got[str(uuid.UUID(int=2))][4] != ""
    assert store.query("SELECT count() FROM completions").scalar() == 2


def test_span_content_wins_over_log_content(store):
    writer = StoreWriter(store)
    writer.write([content(1)])
    writer.write([span_completion(1, prompt="from the span", completion="answer")])
    writer.write([content(1)])
    assert rows(store)[str(uuid.UUID(int=1))][:3] == ("from the span", "text", "answer")


def test_a_second_copy_of_one_response_is_dropped_per_project(store):
    writer = StoreWriter(store)
    first = writer.write([span_completion(1, response_id="chatcmpl-1", prompt="a")])
    again = writer.write(
        [
            span_completion(2, response_id="chatcmpl-1", prompt="a"),  # second instrumentation
            span_completion(3, response_id="chatcmpl-1", prompt="a", project_id="bank"),
            span_completion(4, response_id="chatcmpl-2", prompt="b"),
            span_completion(5, response_id="chatcmpl-2", prompt="b"),
        ]
    )
    assert first.inserted == {"completions": 1}
    assert again.inserted == {"completions": 2} and again.duplicates == 2
    found = store.query("SELECT project_id, response_id FROM completions ORDER BY 1, 2").rows
    assert [tuple(r) for r in found] == [
        ("bank", "chatcmpl-1"),
        ("shop", "chatcmpl-1"),
        ("shop", "chatcmpl-2"),
    ]


def test_cost_prices_cached_input_tokens_apart():
    price = DEFAULT_PRICES["gpt-4o"]
    plain = span_completion(1, prompt_tokens=1000, completion_tokens=100)
    cached = span_completion(1, prompt_tokens=1000, completion_tokens=100, cache_read_tokens=800)
    full = cost_usd(plain, 1000, 100, price, (1.25, 2.5))
    discounted = cost_usd(cached, 1000, 100, price, (1.25, 2.5))
    assert full == (1000 * 2.5 + 100 * 10) / 1e6
    assert discounted == (200 * 2.5 + 800 * 1.25 + 100 * 10) / 1e6


def test_feedback_on_a_dropped_copy_or_naming_only_a_response_finds_the_stored_call(store):
    from llmloop.events import ScoreFeedback

    writer = StoreWriter(store)
    writer.write([span_completion(1, response_id="chatcmpl-1", prompt="a")])

    def verdict(completion: uuid.UUID, **metadata) -> ScoreFeedback:
        return ScoreFeedback(
            project_id="shop",
            timestamp=T0,
            completion_id=completion,
            source="judge",
            value=0.5,
            metadata=metadata,
        )

    writer.write(
        [
            verdict(uuid.UUID(int=2), **{"gen_ai.response.id": "chatcmpl-1"}),  # dropped copy
            verdict(uuid.UUID(int=3)),  # nothing to go by: kept as sent
            verdict(uuid.UUID(int=1), **{"gen_ai.response.id": "chatcmpl-1"}),  # as sent
        ]
    )
    found = store.query("SELECT completion_id FROM feedback ORDER BY ts, completion_id").rows
    assert sorted(str(r[0]) for r in found) == sorted(
        [str(uuid.UUID(int=1)), str(uuid.UUID(int=1)), str(uuid.UUID(int=3))]
    )


def test_the_enricher_reads_content_that_came_first_as_log_records(store):
    from llmloop_processor.embed import Sampler
    from llmloop_processor.enrichment import Enricher, EnrichmentWriter

    StoreWriter(store).write([content(1)])
    EnrichmentWriter(store, Enricher(Sampler(1.0))).write([span_completion(1)])
    found = store.query("SELECT prompt_chars FROM completion_enrichments").rows
    assert [r[0] for r in found] == [len("true")]
