"""The alert state machine: one per (rule, label set), inactive -> pending -> firing -> resolved.

Pure functions over plain data, so every transition is a list-in, list-out
test. ``observe`` handles a metric for the alert; ``tick`` handles the passing
of time (a ``for`` duration that elapsed, a renotify that is due, data that
stopped coming). Both return the new state and what to do about it:

* ``fire``     the alert starts firing: publish an alert event, notify;
* ``resolve``  it stopped: publish, notify (when the rule sends resolved);
* ``renotify`` still firing after ``renotify``: notify again, nothing published.

One notification per fingerprint per renotify interval: ``last_notified_at``
moves with every fire and renotify, and it is persisted with the state.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from llmloop.events import MetricComputed
from llmloop_alerting.rules import Rule

Status = Literal["inactive", "pending", "firing", "resolved"]
ActionKind = Literal["fire", "resolve", "renotify"]

# Series that stopped reporting and are not firing are forgotten after this long.
FORGET_AFTER = timedelta(days=7)


@dataclass(frozen=True)
class AlertState:
    """What is known about one alert; persisted as JSON after every change."""

    rule: str
    fingerprint: str
    project_id: str | None
    labels: dict[str, str]
    status: Status = "inactive"
    value: float | None = None
    p_value: float | None = None
    breached: bool = False
    active_since: datetime | None = None  # first breach of the current pending/firing run
    starts_at: datetime | None = None  # when it started firing
    ends_at: datetime | None = None  # when it resolved
    last_seen: datetime | None = None  # wall clock of the last observation
    observed_until: datetime | None = None  # newest metric window_end seen
    last_notified_at: datetime | None = None
    no_data: bool = False  # firing because data stopped (rule no_data: alert)
    annotations: dict[str, str] = field(default_factory=dict)
    # Breach verdicts of the last evaluated windows, newest last (``confirm`` of them,
    # among the last ``confirm_of``, fire the alert).
    recent: tuple[bool, ...] = ()
    clears: int = 0  # while firing: quiet windows in a row (towards ``resolve_after``)


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    state: AlertState
    reason: str = ""


def new_state(rule: Rule, metric: MetricComputed) -> AlertState:
    labels = rule.alert_labels(metric)
    return AlertState(
        rule=rule.name,
        fingerprint=rule.fingerprint(metric.project_id, labels),
        project_id=metric.project_id,
        labels=labels,
    )


def _annotate(rule: Rule, state: AlertState) -> AlertState:
    context = {
        "value": state.value,
        "threshold": rule.threshold,
        "p_value": state.p_value,
        "labels": state.labels,
        "rule": rule.name,
        "metric": rule.metric,
    }
    return replace(state, annotations=rule.render_annotations(context))


def _fire(rule: Rule, state: AlertState, now: datetime, reason: str) -> tuple[AlertState, Action]:
    fired = _annotate(
        rule,
        replace(
            state, status="firing", starts_at=now, ends_at=None, last_notified_at=now, clears=0
        ),
    )
    return fired, Action("fire", fired, reason)


def _resolve(
    rule: Rule, state: AlertState, now: datetime, reason: str
) -> tuple[AlertState, list[Action]]:
    resolved = _annotate(
        rule,
        replace(
            state,
            status="resolved",
            ends_at=now,
            active_since=None,
            no_data=False,
            recent=(),
            clears=0,
        ),
    )
    return resolved, [Action("resolve", resolved, reason)]


def _due_to_fire(rule: Rule, state: AlertState, now: datetime) -> bool:
    return (
        state.active_since is not None
        and sum(state.recent) >= rule.confirm
        and now - state.active_since >= rule.for_
    )


def _renotify_due(rule: Rule, state: AlertState, now: datetime) -> bool:
    if rule.renotify <= timedelta(0) or state.last_notified_at is None:
        return False
    return now - state.last_notified_at >= rule.renotify


def observe(
    rule: Rule, state: AlertState, metric: MetricComputed, now: datetime
) -> tuple[AlertState, list[Action]]:
    """Apply one metric that ``rule`` applies to. Older windows than seen are ignored, and
    so, for rules on non-overlapping windows, are windows that overlap the last one."""
    if state.observed_until is not None:
        if metric.window_end < state.observed_until:
            return state, []  # out of order: a newer window already decided
        if rule.non_overlapping() and metric.window_start < state.observed_until:
            return replace(state, last_seen=now), []  # shares rows with the last verdict
    breached = rule.breached(metric)
    state = replace(
        state,
        value=metric.value,
        p_value=metric.p_value,
        breached=breached,
        last_seen=now,
        observed_until=metric.window_end,
    )
    if state.no_data:
        # Data is back after a no-data alert: it resolves unless the data itself breaches,
        # in which case the same alert goes on firing (one incident, not two).
        state = replace(state, no_data=False)
    recent = (*state.recent, breached)[-rule.confirm_window :]
    state = replace(state, recent=recent)
    if state.status == "firing":
        clears = 0 if rule.still_breached(metric) else state.clears + 1
        state = replace(state, clears=clears)
        if clears >= rule.resolve_after:
            return _resolve(rule, state, now, f"quiet for {clears} window(s)")
        return _breach(rule, state, now, [])
    if breached:
        return _breach(rule, state, now, [])
    if state.status == "pending" and not any(recent):
        return replace(state, status="inactive", active_since=None), []
    return state, []  # pending goes on while a breach is among the last confirm_of windows


def _breach(
    rule: Rule, state: AlertState, now: datetime, actions: list[Action]
) -> tuple[AlertState, list[Action]]:
    if state.status in ("inactive", "resolved"):
        state = replace(state, status="pending", active_since=now, starts_at=None, ends_at=None)
    if state.status == "pending":
        if _due_to_fire(rule, state, now):
            state, action = _fire(rule, state, now, "threshold crossed")
            return state, [*actions, action]
        return state, actions
    # firing: keep the annotations current, notify again only when due
    state = _annotate(rule, state)
    if _renotify_due(rule, state, now):
        state = replace(state, last_notified_at=now)
        return state, [*actions, Action("renotify", state, "still firing")]
    return state, actions


def tick(rule: Rule, state: AlertState, now: datetime) -> tuple[AlertState, list[Action]]:
    """Let time pass: ``for`` elapsed, renotify due, or no data for ``no_data_after``."""
    silent = state.last_seen is not None and now - state.last_seen >= rule.no_data_after
    if silent and rule.no_data == "resolve":
        if state.status == "firing":
            return _resolve(rule, state, now, "no data")
        if state.status == "pending":
            return replace(state, status="inactive", active_since=None), []
    if silent and rule.no_data == "alert" and state.status != "firing":
        quiet = replace(state, no_data=True, value=None, p_value=None, breached=False)
        state, action = _fire(rule, quiet, now, "no data")
        return state, [action]
    if (
        state.status == "pending"
        and state.breached
        and not silent
        and _due_to_fire(rule, state, now)
    ):
        state, action = _fire(rule, state, now, f"breached for {rule.for_}")
        return state, [action]
    if state.status == "firing" and _renotify_due(rule, state, now):
        state = replace(state, last_notified_at=now)
        return state, [Action("renotify", state, "still firing")]
    return state, []


def forgettable(state: AlertState, now: datetime) -> bool:
    """A quiet series that is not firing: its state can go."""
    return (
        state.status in ("inactive", "resolved")
        and state.last_seen is not None
        and now - state.last_seen >= FORGET_AFTER
    )
