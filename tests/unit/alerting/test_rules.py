"""Rules files: parsed, validated with errors naming the rule and field, evaluated on metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from llmloop.events import MetricComputed
from llmloop_alerting.rules import RulesError, load_rules, parse_duration, parse_rules
from llmloop_app.cli import main

T0 = datetime(2026, 1, 1, tzinfo=UTC)

GOOD = """
receivers:
  - {name: hook, url: "${HOOK_URL:-http://127.0.0.1:1/x}"}
rules:
  - name: drift
    metric: drift_embedding_mmd
    match: {field: prompt}
    match_re: {model: "gpt-4o.*"}
    threshold: 0.05
    p_value_below: 0.01
    min_sample_size: 100
    for: 1m30s
    annotations: {summary: "MMD {value:.2f} on {labels[model]}"}
    receivers: [hook]
"""


def metric(value: float, *, p: float | None = 0.001, n: int = 500, **labels: str) -> MetricComputed:
    return MetricComputed(
        name="drift_embedding_mmd",
        value=value,
        p_value=p,
        sample_size=n,
        labels={"field": "prompt", "model": "gpt-4o-mini", **labels},
        window_start=T0,
        window_end=T0 + timedelta(minutes=1),
    )


def test_a_valid_file_parses_with_durations_and_env_defaults():
    rules = parse_rules(GOOD, env={})
    rule = rules.rules[0]
    assert rule.for_ == timedelta(seconds=90)
    assert rules.receivers[0].url == "http://127.0.0.1:1/x"
    assert parse_rules(GOOD, env={"HOOK_URL": "https://h.example/a"}).receivers[0].url == (
        "https://h.example/a"
    )


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        (("threshold: 0.05", "threshold: high"), "rules[0] 'drift': threshold:"),
        (("for: 1m30s", "for: soon"), "rules[0] 'drift': for: 'soon' is not a duration"),
        (('"gpt-4o.*"', '"gpt-(4o"'), "rules[0] 'drift': match_re: label 'model': bad regex"),
        (("receivers: [hook]", "receivers: [pager]"), "unknown receiver 'pager' (hook)"),
        (("p_value_below: 0.01", "p_value_below: 2"), "rules[0] 'drift': p_value_below:"),
        (("    threshold: 0.05\n", "    treshold: 0.05\n"), "rules[0] 'drift': treshold: Extra"),
    ],
)
def test_errors_name_the_rule_and_the_field(mutation, expected):
    with pytest.raises(RulesError) as info:
        parse_rules(GOOD.replace(*mutation), env={})
    assert expected in str(info.value)


def test_duplicate_names_and_bad_yaml_are_reported():
    doubled = GOOD + GOOD.split("rules:\n")[1]
    with pytest.raises(RulesError, match=r"rules\[1\] 'drift': name: used twice"):
        parse_rules(doubled, env={})
    with pytest.raises(RulesError, match="not valid YAML"):
        parse_rules("rules: [", env={})


def test_matching_uses_name_exact_and_regex_labels():
    rule = parse_rules(GOOD, env={}).rules[0]
    assert rule.applies_to(metric(0.1))
    assert not rule.applies_to(metric(0.1, field="completion"))
    assert not rule.applies_to(metric(0.1, model="llama-3"))
    assert not rule.applies_to(metric(0.1).model_copy(update={"name": "other"}))


def test_breach_needs_threshold_significance_and_sample_size():
    rule = parse_rules(GOOD, env={}).rules[0]
    assert rule.breached(metric(0.1))
    assert not rule.breached(metric(0.01))
    assert not rule.breached(metric(0.1, p=0.2))
    assert not rule.breached(metric(0.1, p=None))
    assert not rule.breached(metric(0.1, n=10))


def test_fingerprint_is_stable_and_differs_per_label_set():
    rule = parse_rules(GOOD, env={}).rules[0]
    a = rule.fingerprint("acme", {"model": "x", "field": "prompt"})
    assert a == rule.fingerprint("acme", {"field": "prompt", "model": "x"})
    assert a != rule.fingerprint("acme", {"model": "y", "field": "prompt"})
    assert a != rule.fingerprint("other", {"model": "x", "field": "prompt"})


def test_annotations_are_templated_and_a_bad_key_never_breaks_them():
    rule = parse_rules(GOOD, env={}).rules[0]
    assert rule.render_annotations({"value": 0.123, "labels": {"model": "m"}}) == {
        "summary": "MMD 0.12 on m"
    }
    assert rule.render_annotations({"value": 0.1, "labels": {}})["summary"].startswith("MMD")


def test_durations():
    assert parse_duration("2d") == timedelta(days=2)
    assert parse_duration(30) == timedelta(seconds=30)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    with pytest.raises(ValueError):
        parse_duration("-5s")


def test_the_shipped_rule_set_is_valid_and_covers_the_issue():
    rules = load_rules(env={})
    assert {r.metric for r in rules.rules} == {
        "drift_embedding_score",
        "bias_segment_gap",
        "toxicity_rate",
        "negative_feedback_rate",
        "latency_p95_ms",
        "cost_usd_per_hour",
        "canary_outcome_difference",  # issue 17: a canary worse than the current version
    }
    canary = {r.match["outcome"]: r.op for r in rules.rules if r.metric.startswith("canary")}
    assert canary == {"negative_feedback": ">", "thumbs_up": "<"}
    # One bias rule per outcome, each in that outcome's unit.
    bias = {r.match["outcome"]: r for r in rules.rules if r.metric == "bias_segment_gap"}
    assert set(bias) == {"negative_feedback", "toxicity", "refusal", "sentiment", "length"}
    assert not any(r.enabled for r in rules.receivers)  # no URL set: nothing is sent


BAD_AGAINST_THE_CATALOGUE = [
    ("metric: drift_embedding_mmd", "metric: embedding_drift_mmd", "metric: unknown metric"),
    ("match: {field: prompt}", "match: {colour: red}", "match.colour: drift_embedding_mmd has no"),
    ("match: {field: prompt}", "match: {field: answer}", "match.field: 'answer' is never a field"),
    ('match_re: {model: "gpt-4o.*"}', "match_re: {feature: x}", "match_re.feature: "),
    ("threshold: 0.05", "threshold: 7", "threshold: 7.0 is not a value of drift_embedding_mmd"),
]


@pytest.mark.parametrize(("old", "new", "expected"), BAD_AGAINST_THE_CATALOGUE)
def test_the_catalogue_rejects_what_no_metric_could_match(old, new, expected):
    with pytest.raises(RulesError) as info:
        parse_rules(GOOD.replace(old, new), env={})
    assert f"rules[0] 'drift': {expected}" in str(info.value)


def test_units_that_depend_on_a_label_need_a_matcher_and_a_p_value_needs_a_test():
    mixed = "rules: [{name: gap, metric: bias_segment_gap, op: '>', threshold: 0.1}]"
    with pytest.raises(RulesError, match="different unit per outcome"):
        parse_rules(mixed, env={})
    sentiment = (
        "rules: [{name: gap, metric: bias_segment_gap, match: {outcome: sentiment}, "
        "op: '<', threshold: -3}]"
    )
    with pytest.raises(RulesError, match="unit sentiment_diff"):
        parse_rules(sentiment, env={})
    with pytest.raises(RulesError, match="p_value_below: latency_p95_ms carries no p-value"):
        parse_rules(
            "rules: [{name: l, metric: latency_p95_ms, threshold: 9, p_value_below: 0.01}]",
            env={},
        )
    with pytest.raises(RulesError, match=r"resolve_threshold 0\.2 must not be beyond"):
        parse_rules(
            "rules: [{name: t, metric: toxicity_rate, threshold: 0.1, resolve_threshold: 0.2}]",
            env={},
        )
    with pytest.raises(RulesError, match="confirm_of 1 must be at least confirm 2"):
        parse_rules(
            "rules: [{name: t, metric: toxicity_rate, threshold: 0.1, confirm: 2, confirm_of: 1}]",
            env={},
        )


def test_rules_check_cli(tmp_path, capsys):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(GOOD)
    bad.write_text(GOOD.replace("threshold: 0.05", "threshold: high"))
    assert main(["rules", "check", str(good)]) == 0
    assert "1 rule" in capsys.readouterr().out
    assert main(["rules", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "rules[0] 'drift': threshold:" in err
    assert main(["rules", "check", str(tmp_path / "missing.yaml")]) == 1
    assert "cannot read" in capsys.readouterr().err
