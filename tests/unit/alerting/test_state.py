"""The alert state machine, list in, list out: inactive -> pending -> firing -> resolved."""

from __future__ import annotations

import itertools
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


# --- calibrated rules: k-of-m confirmation, non-overlapping windows, hysteresis ---------

W = timedelta(minutes=5)


def gap_metric(value: float, index: int, *, p: float = 0.001, step: timedelta = W, n: int = 200):
    """The metric of the window ending ``index`` steps after T0, five minutes long."""
    end = T0 + index * step
    return MetricComputed(
        name="bias_segment_gap",
        value=value,
        p_value=p,
        labels={"model": "m", "attribute": "locale", "outcome": "negative_feedback"},
        window_start=end - W,
        window_end=end,
        sample_size=n,
        project_id="acme",
    )


def gap_rule(**overrides) -> Rule:
    return Rule.model_validate(
        {
            "name": "gap",
            "metric": "bias_segment_gap",
            "match": {"outcome": "negative_feedback"},
            "threshold": 0.1,
            "p_value_below": 0.05,
            "confirm": 2,
            "confirm_of": 3,
            "resolve_after": 3,
            "resolve_threshold": 0.05,
            "min_sample_size": 50,
            **overrides,
        }
    )


def feed(r: Rule, metrics: list[MetricComputed]) -> list[tuple[int, str]]:
    state = new_state(r, metrics[0])
    seen = []
    for i, metric in enumerate(metrics):
        state, actions = observe(r, state, metric, metric.window_end)
        seen += [(i, a.kind) for a in actions]
    return seen


def test_two_breaches_among_three_windows_fire_and_one_alone_does_not():
    r = gap_rule()
    assert feed(r, [gap_metric(v, i) for i, v in enumerate([0.2, 0.0, 0.0, 0.2, 0.0])]) == []
    fired = feed(r, [gap_metric(v, i) for i, v in enumerate([0.2, 0.0, 0.2, 0.0])])
    assert fired == [(2, "fire")]


def test_an_insignificant_window_is_no_breach_whatever_its_value():
    r = gap_rule()
    assert feed(r, [gap_metric(0.3, i, p=0.2) for i in range(5)]) == []
    assert feed(r, [gap_metric(0.3, i, n=10) for i in range(5)]) == []


def test_hysteresis_keeps_a_real_gap_firing_through_quiet_looking_windows():
    """Fires once; a window under the threshold but above resolve_threshold, or two quiet
    windows in a row, do not resolve it; three quiet ones do."""
    r = gap_rule()
    values = [0.2, 0.2, 0.08, 0.2, 0.0, 0.0, 0.07, 0.0, 0.0, 0.0]
    assert feed(r, [gap_metric(v, i) for i, v in enumerate(values)]) == [
        (1, "fire"),
        (9, "resolve"),
    ]


def test_overlapping_windows_are_skipped_so_one_excursion_counts_once():
    """Windows of five minutes every minute: the rule decides on every fifth only, so one
    chance excursion that five overlapping windows share breaches once, and never
    confirms itself."""
    r = gap_rule()
    minute = timedelta(minutes=1)
    excursion = [gap_metric(0.3 if 5 <= i < 10 else 0.0, i, step=minute) for i in range(5, 30)]
    assert feed(r, excursion) == []
    state = new_state(r, excursion[0])
    decided = []
    for metric in excursion:
        before = state.observed_until
        state, _ = observe(r, state, metric, metric.window_end)
        if state.observed_until != before:
            decided.append(metric.window_end)
    assert all(b - a == W for a, b in itertools.pairwise(decided))
    # A rule on every window (windows: all) would have confirmed the same excursion.
    assert feed(gap_rule(windows="all"), excursion)[0] == (1, "fire")
