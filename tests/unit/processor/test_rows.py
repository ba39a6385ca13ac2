"""Events to Arrow tables, column by column: the values each table row gets."""

from __future__ import annotations

import uuid
from datetime import datetime

from llmloop.events import (
    ChatMessage,
    CompletionLogged,
    CorrectionFeedback,
    PreferenceFeedback,
    RetrainJobUpdated,
    ScoreFeedback,
    ThumbsFeedback,
)
from llmloop_processor.rows import COMPLETIONS, FEEDBACK, model_version_rows


def _ms(t: datetime) -> datetime:  # the tables keep milliseconds, as ClickHouse's DateTime64(3)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def test_a_completion_row_has_every_field_and_empty_strings_for_missing_ones() -> None:
    plain = CompletionLogged(model="m", prompt="hi", completion="yo", latency_ms=1.0)
    chat = CompletionLogged(
        model="m",
        prompt=[ChatMessage(role="user", content="q")],
        choices=[ChatMessage(role="assistant", content="a")],
        completion="a",
        project_id="shop",
        trace_id="t1",
        prompt_tokens=3,
        cost_usd=0.25,
        attributes={"plan": "pro"},
        tags=["x"],
        metadata={"k": [1, 2]},
        finish_reasons=["stop"],
    )
    table = COMPLETIONS.to_arrow([plain, chat])
    assert table.schema == COMPLETIONS.schema
    first, second = table.to_pylist()
    assert first["event_id"] == str(plain.event_id) and first["ts"] == _ms(plain.timestamp)
    assert first["project_id"] == first["trace_id"] == first["user_id"] == first["choices"] == ""
    assert first["prompt_format"] == "text" and first["prompt"] == "hi"
    assert first["prompt_tokens"] is None and first["cost_usd"] is None
    assert first["metadata"] == "{}" and first["finish_reasons"] == [] and first["tags"] == []
    assert second["prompt_format"] == "chat"
    assert second["prompt"] == '[{"role":"user","content":"q"}]'
    assert second["choices"] == '[{"role":"assistant","content":"a"}]'
    assert (second["project_id"], second["trace_id"]) == ("shop", "t1")
    assert (second["prompt_tokens"], second["cost_usd"]) == (3, 0.25)
    assert second["attributes"] == [("plan", "pro")] and second["metadata"] == '{"k":[1,2]}'
    assert second["finish_reasons"] == ["stop"]


def test_each_kind_of_feedback_fills_its_own_columns() -> None:
    cid, chosen, rejected = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    events = [
        ThumbsFeedback(completion_id=cid, value=-1),
        ScoreFeedback(completion_id=cid, value=4, scale_min=1, scale_max=5, label="ok"),
        CorrectionFeedback(completion_id=cid, correction="better"),
        PreferenceFeedback(chosen_id=chosen, rejected_id=rejected),
    ]
    thumbs, score, correction, preference = FEEDBACK.to_arrow(events).to_pylist()
    assert (thumbs["kind"], thumbs["value"], thumbs["scale_min"]) == ("thumbs", -1.0, None)
    assert thumbs["chosen_id"] is None and thumbs["correction"] == "" and thumbs["label"] == ""
    assert (score["value"], score["scale_min"], score["scale_max"]) == (4.0, 1.0, 5.0)
    assert score["label"] == "ok" and score["completion_id"] == str(cid)
    assert correction["correction"] == "better" and correction["value"] is None
    assert preference["chosen_id"] == str(chosen) and preference["rejected_id"] == str(rejected)
    assert preference["completion_id"] == str(chosen)  # a preference is about its chosen answer


def test_only_registrations_and_promotions_are_model_versions() -> None:
    events = [
        RetrainJobUpdated(job_id="j", stage="model_registered", model="m", model_version="v1"),
        RetrainJobUpdated(job_id="j", stage="model_promoted", model="m"),
        RetrainJobUpdated(job_id="j", stage="started", model="m"),
    ]
    rows = model_version_rows(events).to_pylist()
    assert [(r["version"], r["status"]) for r in rows] == [("v1", "registered"), ("j", "promoted")]
    assert rows[0]["registered_at"] == rows[0]["updated_at"] == _ms(events[0].timestamp)
    assert model_version_rows(events[2:]).num_rows == 0
