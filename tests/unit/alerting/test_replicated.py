"""The replicated alerting state, list in, list out: change sets and snapshots rebuild it."""

from __future__ import annotations

import orjson

from llmloop.bus import Record
from llmloop.events import AlertStateChanged
from llmloop_alerting.journal import Notification, _encode_state
from llmloop_alerting.replicated import (
    KEEP_PROCESSED,
    PartitionState,
    _b64,
    _note_dict,
)
from llmloop_alerting.state import AlertState


def alert_state(fp: str, status: str = "firing") -> AlertState:
    return AlertState(rule="r", fingerprint=fp, project_id="p", labels={"model": fp}, status=status)  # type: ignore[arg-type]


def note(id_: str, state: str = "pending") -> Notification:
    alert = AlertStateChanged(
        rule="r", status="firing", fingerprint="a", starts_at="2026-12-01T00:00:00Z"
    )
    return Notification(id_, "hook", alert, state=state, next_at=1.0, created_at=1.0)


def change(**parts) -> dict:
    return orjson.loads(orjson.dumps({"k": "change", **parts}))  # as read back from the log


def test_change_sets_then_a_snapshot_rebuild_the_same_state():
    live = PartitionState(3)
    log = [
        change(
            states={fp: _encode_state(alert_state(fp)).decode() for fp in ("a", "b")},
            processed=["m1", "m2"],
            notes=[_note_dict(note("n1")), _note_dict(note("n2"))],
            publish=[["e1", "llmloop.alerts.v1", _b64(b"k"), _b64(b"v1")]],
        ),
        change(notes=[_note_dict(note("n1", "delivered"))], published=["e1"]),
        change(
            forget=["b"],
            publish=[["e2", "llmloop.alerts.v1", None, _b64(b"v2")]],
            notes=[_note_dict(note("n2", "dead"))],
        ),
    ]
    for c in log:
        live.apply(c)
    assert set(live.states) == {"a"}
    assert list(live.processed) == ["m1", "m2"]
    assert {i: n.state for i, n in live.outbox.items()} == {"n2": "dead"}  # delivered: gone
    assert live.unpublished == {"e2": ("llmloop.alerts.v1", Record(None, b"v2"))}

    rebuilt = PartitionState(3)
    rebuilt.apply(change(states={"x": _encode_state(alert_state("x")).decode()}))  # before it
    rebuilt.apply(orjson.loads(orjson.dumps(live.snapshot())))
    assert rebuilt.states == live.states
    assert rebuilt.processed == live.processed
    assert rebuilt.outbox == live.outbox
    assert rebuilt.unpublished == live.unpublished


def test_evaluated_ids_are_bounded():
    s = PartitionState(0)
    s.apply(change(processed=[f"m{i}" for i in range(KEEP_PROCESSED + 10)]))
    assert len(s.processed) == KEEP_PROCESSED
    assert next(iter(s.processed)) == "m10"  # the oldest went first
