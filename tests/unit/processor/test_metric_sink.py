"""A window's metrics: stable ids, catalogue-checked, p-values Holm-adjusted per family."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from llmloop_processor.metric_sink import MetricSink, holm

T = datetime(2026, 1, 1, tzinfo=UTC)
BASE = {"project": "p", "model": "m", "prompt_version": "v"}


def test_holm_matches_the_step_down_definition():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5]
    assert holm([0.2, 0.9, 0.001, 0.6]) == pytest.approx([0.6, 1.0, 0.004, 1.0])


def test_families_are_per_metric_and_family_labels_and_raw_p_is_kept():
    sink = MetricSink(BASE, T, T)
    for field, p in (("prompt", 0.004), ("completion", 0.3)):
        sink.add("drift_embedding_mmd", 0.1, 100, p, field=field, reference="first_n")
    for outcome, segment, p in (
        ("refusal", "a", 0.01),
        ("refusal", "b", 0.02),
        ("toxicity", "a", 0.01),
    ):
        sink.add(
            "bias_segment_gap", 0.1, 100, p, attribute="locale", outcome=outcome, segment=segment
        )
    got = {
        (m.name, m.labels.get("field") or m.labels["segment"] + m.labels.get("outcome", "")): (
            m.p_value,
            m.p_value_raw,
        )
        for m in sink.metrics
    }
    assert got[("drift_embedding_mmd", "prompt")] == pytest.approx((0.008, 0.004))
    assert got[("drift_embedding_mmd", "completion")] == (0.3, 0.3)
    assert got[("bias_segment_gap", "arefusal")] == pytest.approx((0.02, 0.01))
    assert got[("bias_segment_gap", "brefusal")] == (0.02, 0.02)
    assert got[("bias_segment_gap", "atoxicity")] == (0.01, 0.01)  # a family of its own


def test_ids_are_stable_across_recomputation_and_non_finite_values_are_left_out():
    def one() -> MetricSink:
        sink = MetricSink(BASE, T, T)
        sink.add("latency_p95_ms", 120.0, 50)
        sink.add("toxicity_rate", float("nan"), 50)
        return sink

    first, second = one().metrics, one().metrics
    assert [m.event_id for m in first] == [m.event_id for m in second] and len(first) == 1
