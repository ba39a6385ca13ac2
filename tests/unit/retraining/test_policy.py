"""Trigger policy: new pairs, interval, alerts, cooldown, by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from llmloop.events import AlertStateChanged
from llmloop_retraining.policy import ModelState, PolicyBook, TriggerPolicy, decide

NOW = datetime(2026, 1, 10, tzinfo=UTC)
POLICY = TriggerPolicy(
    min_new_pairs=100,
    max_interval="7d",
    cooldown="6h",
    alert_rules=("embedding_drift",),
    min_total_pairs=20,
)


def state(new: int, total: int = 500, last: timedelta | None = timedelta(days=1), running=False):
    return ModelState(new, total, None if last is None else NOW - last, running)


def alert(rule: str = "embedding_drift", status: str = "firing") -> AlertStateChanged:
    return AlertStateChanged(
        rule=rule, status=status, fingerprint="f1", starts_at=NOW, labels={"model": "m1"}
    )


@pytest.mark.parametrize(
    ("st", "kw", "start", "why"),
    [
        (state(150), {}, True, "150 new pairs"),
        (state(50), {}, False, "50 new pairs; 100 needed"),
        (state(5, last=timedelta(days=8)), {}, True, "interval has passed"),
        (state(0, last=timedelta(days=8)), {}, False, "0 new pairs"),
        (state(5, last=None), {}, False, "5 new pairs; 100 needed"),
        (state(500, last=timedelta(hours=1)), {}, False, "in cooldown"),
        (state(1), {"alert": alert()}, True, "alert embedding_drift is firing"),
        (state(1, last=timedelta(hours=1)), {"alert": alert()}, False, "in cooldown"),
        (state(1, last=timedelta(hours=1)), {"manual": True}, True, "requested by hand"),
        (state(500, total=10), {"manual": True}, False, "at least 20 needed"),
        (state(500, running=True), {}, False, "running"),
    ],
)
def test_decide(st, kw, start, why):
    decision = decide(POLICY, st, NOW, **kw)
    assert decision.start is start and why in decision.reason


def test_policy_file_with_overrides(tmp_path):
    path = tmp_path / "retrain.yaml"
    path.write_text(
        "default: {min_new_pairs: 50, cooldown: 2h}\n"
        "models:\n  gpt-x: {min_new_pairs: 500, launcher: kubernetes}\n"
    )
    book = PolicyBook.load(path)
    assert book.for_model("other").min_new_pairs == 50
    gpt = book.for_model("gpt-x")
    assert (gpt.min_new_pairs, gpt.launcher, gpt.cooldown) == (
        500,
        "kubernetes",
        timedelta(hours=2),
    )


def test_a_bad_policy_file_names_the_model_and_field(tmp_path):
    path = tmp_path / "retrain.yaml"
    path.write_text("models:\n  gpt-x: {cooldown: soon}\n")
    with pytest.raises(ValueError, match="cooldown"):
        PolicyBook.load(path)
