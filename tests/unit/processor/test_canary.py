"""The canary metric on chDB: each non-current version against the current one, and the
shipped canary rule firing on it (and not on a canary that is as good)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from llmloop.contracts.metrics import VERSION_OUTCOMES
from llmloop.events import CompletionLogged, RetrainJobUpdated, ThumbsFeedback
from llmloop_alerting.rules import load_rules
from llmloop_alerting.state import new_state, observe
from llmloop_processor.canary import canary_metrics
from llmloop_processor.compare import OUTCOMES
from llmloop_processor.writer import StoreWriter

NOW = datetime.now(UTC).replace(microsecond=0)


def traffic(version: str, rate: float, n: int, rng: random.Random) -> list:
    events: list = []
    for i in range(n):
        c = CompletionLogged(
            model="chat",
            model_version=version,
            prompt=f"p {version} {i}",
            completion="a",
            project_id="acme",
            timestamp=NOW - timedelta(hours=1, seconds=i),
        )
        value = 1 if rng.random() < rate else -1
        events += [c, ThumbsFeedback(completion_id=c.event_id, value=value, project_id="acme")]
    return events


def test_canaries_against_the_promoted_version_and_the_rule_on_them(store):
    rng = random.Random(4)
    events = (
        traffic("v1", 0.7, 300, rng)  # promoted: the current version, although the smallest
        + traffic("v2", 0.5, 400, rng)  # worse canary
        + traffic("v3", 0.7, 400, rng)  # as good
    )
    promoted = RetrainJobUpdated(
        stage="model_promoted", job_id="j", model="chat", model_version="v1", project_id="acme"
    )
    StoreWriter(store).write([*events, promoted])
    metrics = canary_metrics(
        lambda sql, p: store.query(sql, p).rows,
        NOW - timedelta(minutes=5),
        NOW,
        lookback_s=86400,
        min_samples=30,
    )
    thumbs = {m.labels["model_version"]: m for m in metrics if m.labels["outcome"] == "thumbs_up"}
    assert set(thumbs) == {"v2", "v3"}
    assert all(m.labels["baseline_version"] == "v1" for m in metrics)
    assert thumbs["v2"].value < -0.1 and thumbs["v2"].p_value < 0.05
    assert thumbs["v3"].p_value > 0.05
    assert thumbs["v2"].sample_size == 300
    assert {m.labels["outcome"] for m in metrics} == {"thumbs_up", "negative_feedback"}

    [rule] = [r for r in load_rules(env={}).rules if r.name == "canary-thumbs-up"]
    for version, fires in (("v2", True), ("v3", False)):
        state = new_state(rule, thumbs[version])
        _, actions = observe(rule, state, thumbs[version], NOW)
        assert [a.kind for a in actions] == (["fire"] if fires else []), version


def test_outcomes_match_the_catalogue():
    assert tuple(OUTCOMES) == VERSION_OUTCOMES


def test_without_a_promotion_the_busiest_version_is_the_current_one(store):
    rng = random.Random(5)
    # v2 has more thumbs than v1 but fewer completions: v1 (500 completions) is current.
    events = traffic("v1", 0.6, 300, rng) + traffic("v2", 0.6, 350, rng)
    events += [
        CompletionLogged(
            model="chat",
            model_version="v1",
            prompt=f"x{i}",
            completion="a",
            project_id="acme",
            timestamp=NOW - timedelta(hours=2),
        )
        for i in range(200)
    ]
    StoreWriter(store).write(events)
    metrics = canary_metrics(
        lambda sql, p: store.query(sql, p).rows, NOW, NOW, lookback_s=86400, min_samples=30
    )
    assert {(m.labels["model_version"], m.labels["baseline_version"]) for m in metrics} == {
        ("v2", "v1")
    }
    assert all(m.p_value > 0.05 for m in metrics)  # same behaviour: nothing to report
