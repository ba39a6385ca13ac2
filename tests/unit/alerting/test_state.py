"""The alert state machine, list in, list out: inactive -> pending -> firing -> resolved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from llmloop.events import MetricComputed
from llmloop_alerting.rules import Rule
from llmloop_alerting.state import AlertState, forgettable, new_state, observe, tick

T0 = datetime(2026, 1, 1, tzinfo=UTC)
S = timedelta(seconds=1)


def rule(**overrides) -> Rule:
    data = {
        "name": "tox",
        "metric": "toxicity_rate",
        "threshold": 0.1,
        "renotify": "1h",
        "annotations": {"summary": "toxic {value}"},
        **overrides,
    }
    return Rule.model_validate(data)


def m(value: float, at: int) -> MetricComputed:
    return MetricComputed(
        name="toxicity_rate",
        value=value,
        labels={"model": "m"},
        window_start=T0,
        window_end=T0 + at * S,
        sample_size=100,
        project_id="acme",
    )


def run(r: Rule, steps: list[tuple[int, float | None]]) -> tuple[AlertState, list[tuple[int, str]]]:
    """Feed (second, value) steps; value None means a tick. Returns (state, [(second, action)])."""
    state = new_state(r, m(0, 0))
    seen = []
    for at, value in steps:
        now = T0 + at * S
        state, actions = (
            tick(r, state, now) if value is None else observe(r, state, m(value, at), now)
        )
        seen += [(at, a.kind) for a in actions]
    return state, seen


def test_fires_at_once_without_for_and_resolves_when_the_metric_recovers():
    state, seen = run(rule(), [(0, 0.05), (10, 0.2), (20, 0.3), (30, 0.05)])
    assert seen == [(10, "fire"), (30, "resolve")]
    assert state.status == "resolved" and state.starts_at == T0 + 10 * S
    assert state.ends_at == T0 + 30 * S


def test_for_keeps_it_pending_and_a_recovery_cancels_without_a_notification():
    state, seen = run(rule(**{"for": "60s"}), [(0, 0.2), (30, 0.2), (40, 0.01)])
    assert seen == [] and state.status == "inactive"


def test_for_fires_on_a_tick_once_the_breach_lasted_long_enough():
    state, seen = run(rule(**{"for": "60s"}), [(0, 0.2), (30, None), (59, None), (60, None)])
    assert seen == [(60, "fire")] and state.status == "firing"
    assert state.annotations == {"summary": "toxic 0.2"}


def test_one_notification_per_renotify_interval_while_firing():
    hour = 3600
    steps = [(0, 0.2)] + [(t, 0.2) for t in range(60, 2 * hour + 1, 60)] + [(2 * hour + 5, None)]
    _, seen = run(rule(), steps)
    assert seen == [(0, "fire"), (hour, "renotify"), (2 * hour, "renotify")]


def test_renotify_zero_means_never():
    _, seen = run(rule(renotify=0), [(0, 0.2), (99_999, 0.2), (199_999, None)])
    assert seen == [(0, "fire")]


def test_an_older_window_arriving_late_changes_nothing():
    r = rule()
    state, _ = observe(r, new_state(r, m(0, 0)), m(0.2, 100), T0 + 100 * S)
    later, actions = observe(r, state, m(0.01, 50), T0 + 101 * S)
    assert actions == [] and later == state


def test_no_data_resolve_and_alert_modes():
    _, seen = run(rule(no_data="resolve", no_data_after="5m"), [(0, 0.2), (200, None), (300, None)])
    assert seen == [(0, "fire"), (300, "resolve")]
    state, seen = run(
        rule(no_data="alert", no_data_after="5m"),
        [(0, 0.01), (300, None), (301, None), (400, 0.02)],
    )
    assert seen == [(300, "fire"), (400, "resolve")]
    assert not state.no_data


def test_no_data_keep_leaves_a_firing_alert_firing():
    state, seen = run(rule(no_data_after="5m"), [(0, 0.2), (10_000, None)])
    assert state.status == "firing" and seen[0] == (0, "fire")


def test_a_quiet_resolved_series_is_forgotten_after_a_week():
    state, _ = run(rule(), [(0, 0.2), (1, 0.0)])
    assert not forgettable(state, T0 + timedelta(days=6))
    assert forgettable(state, T0 + timedelta(days=8))
