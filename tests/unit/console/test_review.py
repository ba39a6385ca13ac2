"""The review queue: one reviewer per item, skips, and judgments as annotator feedback events."""

from __future__ import annotations

import pytest

from llmloop.events import ingest_adapter
from llmloop_console.review import Item, Leases, judgment_events


def item(key: str = "pair:a:b", kind: str = "pair") -> Item:
    ids = ["00000000-0000-4000-8000-00000000000a", "00000000-0000-4000-8000-00000000000b"]
    answers = [{"id": i, "completion": f"answer {i[-1]}"} for i in ids]
    return Item(key, kind, "shop", "m", "prompt", answers if kind == "pair" else answers[:1])


def test_an_item_is_never_handed_to_two_reviewers():
    leases = Leases()
    first, second = item("pair:1"), item("pair:2")
    assert leases.take("alice", [first, second]) is first
    assert leases.take("bob", [first, second]) is second
    assert leases.take("carol", [first, second]) is None
    assert leases.take("alice", [first, second]) is first  # a reload: the same item


def test_a_skip_frees_the_item_for_others_and_hides_it_from_the_skipper():
    leases = Leases()
    only = item("pair:1")
    leases.take("alice", [only])
    leases.release("alice", only.key, skip=True)
    assert leases.take("alice", [only]) is None
    assert leases.take("bob", [only]) is only


def test_an_expired_lease_goes_back_to_the_queue():
    leases = Leases(ttl_s=-1)
    only = item("pair:1")
    leases.take("alice", [only])
    assert leases.take("bob", [only]) is only


def test_only_the_holder_may_judge():
    leases = Leases()
    only = item()
    leases.take("alice", [only])
    assert leases.holding("bob", only.key) is None
    assert leases.holding("alice", only.key) is only


def test_a_pick_is_a_valid_annotator_preference():
    it = item()
    chosen = it.answers[1]["id"]
    (event,) = judgment_events(it, {"verdict": "preference", "chosen_id": chosen}, "tok")
    parsed = ingest_adapter.validate_python(event)
    assert parsed.kind == "preference" and parsed.source == "annotator"
    assert str(parsed.chosen_id) == chosen and str(parsed.rejected_id) == it.answers[0]["id"]
    assert event["metadata"]["console.reviewer"] == "tok"


def test_a_score_and_a_correction_are_valid_feedback():
    it = item(kind="single")
    (score,) = judgment_events(it, {"verdict": "score", "value": 4}, "tok")
    assert ingest_adapter.validate_python(score).kind == "score"
    assert (score["scale_min"], score["scale_max"]) == (1, 5)
    (fix,) = judgment_events(it, {"verdict": "correction", "correction": "Better."}, "tok")
    assert ingest_adapter.validate_python(fix).correction == "Better."


@pytest.mark.parametrize(
    "judgment",
    [
        {"verdict": "preference", "chosen_id": "00000000-0000-4000-8000-00000000000c"},
        {"verdict": "score", "value": 9},
        {"verdict": "correction", "correction": "  "},
        {"verdict": "thumbs"},
        {"verdict": "score", "value": 3, "completion_id": "not-an-answer-of-this-item"},
    ],
)
def test_a_judgment_outside_the_item_is_refused(judgment):
    with pytest.raises(ValueError):
        judgment_events(item(), judgment, "tok")
