"""The event contracts: what a valid event is, and errors that name the field."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from llmloop.events import (
    MAX_LABELS,
    MAX_METADATA_DEPTH,
    MAX_TEXT_CHARS,
    CompletionLogged,
    PreferenceFeedback,
    ScoreFeedback,
    encode_event,
    error_field,
    ingest_adapter,
    parse_event,
)

COMPLETION = {
    "type": "completion",
    "event_id": "0b7e6a2c-4d0f-4c39-9a8e-2f1f7f0c9d11",
    "model": "gpt-4o-mini",
    "prompt": "hello",
    "completion": "hi there",
}
CID = "0b7e6a2c-4d0f-4c39-9a8e-2f1f7f0c9d11"


def error_fields(data: dict) -> list[str]:
    """The fields pydantic names, without the union tags users never wrote."""
    with pytest.raises(ValidationError) as info:
        ingest_adapter.validate_python(data)
    return [error_field(e) for e in info.value.errors()]


def test_completion_round_trips_through_the_wire_form():
    event = ingest_adapter.validate_python(
        {
            **COMPLETION,
            "prompt": [{"role": "user", "content": "hello"}],
            "attributes": {"plan": "pro"},
        }
    )
    again = parse_event(encode_event(event))
    assert again == event
    assert again.prompt_text() == "user: hello"
    assert event.key() == uuid.UUID(COMPLETION["event_id"]).bytes


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"prompt_tokens": -1}, "prompt_tokens"),
        ({"completion_tokens": 1.5}, "completion_tokens"),
        ({"latency_ms": -0.1}, "latency_ms"),
        ({"cost_usd": float("nan")}, "cost_usd"),
        ({"event_id": "not-a-uuid"}, "event_id"),
        ({"model": ""}, "model"),
        ({"completion": "x" * (MAX_TEXT_CHARS + 1)}, "completion"),
        ({"prompt": []}, "prompt"),
        ({"attributes": {f"k{i}": "v" for i in range(MAX_LABELS + 1)}}, "attributes"),
        ({"attributes": {"locale": 3}}, "attributes.locale"),
        ({"surprise": 1}, "surprise"),
        ({"project_id": "Not Valid!"}, "project_id"),
    ],
)
def test_invalid_completion_names_the_field(change, field):
    fields = error_fields({**COMPLETION, **change})
    assert any(f == field or f.startswith(field + ".") for f in fields), fields


def test_timestamps_are_utc_and_sane():
    naive = ingest_adapter.validate_python({**COMPLETION, "timestamp": "2026-01-02T03:04:05"})
    assert naive.timestamp == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    offset = ingest_adapter.validate_python(
        {**COMPLETION, "timestamp": "2026-01-02T05:04:05+02:00"}
    )
    assert offset.timestamp == naive.timestamp
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    assert error_fields({**COMPLETION, "timestamp": future}) == ["timestamp"]
    assert error_fields({**COMPLETION, "timestamp": "1999-12-31T23:59:59Z"}) == ["timestamp"]


def test_metadata_is_bounded_in_depth_and_size():
    deep: dict = {}
    node = deep
    for _ in range(MAX_METADATA_DEPTH + 1):
        node["x"] = {}
        node = node["x"]
    assert error_fields({**COMPLETION, "metadata": deep}) == ["metadata"]
    assert error_fields({**COMPLETION, "metadata": {"blob": "x" * 70_000}}) == ["metadata"]
    ok = ingest_adapter.validate_python({**COMPLETION, "metadata": {"k": [1, 2, {"a": None}]}})
    assert ok.metadata == {"k": [1, 2, {"a": None}]}


@pytest.mark.parametrize(
    ("feedback", "fields"),
    [
        ({"kind": "thumbs", "value": 2}, ["value"]),
        ({"kind": "thumbs"}, ["value"]),
        ({"kind": "score", "value": 6, "scale_min": 1, "scale_max": 5}, ["value"]),
        ({"kind": "score", "value": 1, "scale_min": 5, "scale_max": 1}, ["scale_max"]),
        ({"kind": "comment", "comment": ""}, ["comment"]),
        ({"kind": "correction"}, ["correction"]),
        ({"kind": "preference", "chosen_id": CID, "rejected_id": CID}, ["rejected_id"]),
        ({"kind": "stars", "value": 1}, ["kind"]),
        ({"kind": "thumbs", "value": 1, "source": "robot"}, ["source"]),
    ],
)
def test_invalid_feedback_names_the_field(feedback, fields):
    data = {"type": "feedback", "event_id": str(uuid.uuid4()), "completion_id": CID, **feedback}
    if feedback["kind"] == "preference":
        data.pop("completion_id")
    assert error_fields(data) == fields


def test_every_feedback_kind_parses_and_is_keyed_by_its_completion():
    base = {"type": "feedback", "completion_id": CID}
    kinds = [
        {"kind": "thumbs", "value": -1},
        {"kind": "score", "value": 4, "scale_min": 1, "scale_max": 5},
        {"kind": "comment", "comment": "great"},
        {"kind": "correction", "correction": "the right answer"},
    ]
    for kind in kinds:
        event = ingest_adapter.validate_python({**base, **kind})
        assert event.kind == kind["kind"]
        assert event.key() == uuid.UUID(CID).bytes
    score = ingest_adapter.validate_python({**base, **kinds[1]})
    assert isinstance(score, ScoreFeedback) and score.value == 4


def test_preference_is_keyed_by_the_chosen_completion():
    chosen, rejected = uuid.uuid4(), uuid.uuid4()
    event = ingest_adapter.validate_python(
        {
            "type": "feedback",
            "kind": "preference",
            "chosen_id": str(chosen),
            "rejected_id": str(rejected),
        }
    )
    assert isinstance(event, PreferenceFeedback)
    assert event.completion_id == chosen
    assert parse_event(encode_event(event)) == event


def test_events_are_immutable():
    event = CompletionLogged(model="m", prompt="p", completion="c")
    with pytest.raises(ValidationError):
        event.model = "other"  # type: ignore[misc]


def test_a_missing_type_names_the_discriminator():
    assert error_fields({"model": "m"}) == ["type"]
    assert error_fields({"type": "feedback", "completion_id": CID}) == ["kind"]


def test_ingest_accepts_only_what_apps_send():
    metric = {
        "type": "metric",
        "name": "x",
        "value": 1,
        "window_start": "2026-01-01T00:00:00Z",
        "window_end": "2026-01-01T00:01:00Z",
        "sample_size": 3,
    }
    assert parse_event(__import__("orjson").dumps(metric)).type == "metric"
    assert error_fields(metric) == ["type"]
