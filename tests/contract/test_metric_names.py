"""The metric catalogue is the one list: statistics, alert rules and dashboards agree with it.

A rule or a panel on a metric nobody publishes would stay silent forever, and a
metric nobody catalogued would be invisible to ``llmloop rules check``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llmloop.contracts.metrics import CATALOGUE, UNITS, spec
from llmloop_alerting.rules import load_rules
from llmloop_processor.metric_sink import MetricSink
from llmloop_processor.simulate import T0

ROOT = Path(__file__).resolve().parents[2]


def test_every_catalogued_metric_names_a_known_unit_and_family_labels_it_carries():
    for entry in CATALOGUE.values():
        units = [entry.unit] if entry.unit else []
        units += [u for by_value in entry.unit_by.values() for u in by_value.values()]
        assert units and all(u in UNITS for u in units), entry.name
        assert set(entry.family) <= set(entry.labels), entry.name
        assert bool(entry.unit) != bool(entry.unit_by), entry.name


def test_the_statistics_refuse_a_name_or_labels_the_catalogue_does_not_know():
    sink = MetricSink({"project": "p", "model": "m", "prompt_version": ""}, T0, T0)
    with pytest.raises(KeyError, match="unknown metric 'embedding_drift_mmd'"):
        sink.add("embedding_drift_mmd", 0.1, 10)
    with pytest.raises(ValueError, match="labels"):
        sink.add("drift_embedding_mmd", 0.1, 10, 0.5, field="prompt")
    with pytest.raises(ValueError, match="no p-value"):
        sink.add("latency_p95_ms", 10.0, 10, 0.5)


def test_a_simulated_window_publishes_catalogued_metrics_with_adjusted_p_values(tmp_path):
    """Everything the statistics of a window emit is catalogued, and p >= p_raw."""
    import random

    import numpy as np

    from llmloop_processor import simulate as sim
    from llmloop_processor.stats import window_metrics

    rng = np.random.default_rng(0)
    pools = sim.Pools(size=60, encode=lambda texts: _fake_unit_vectors(texts, rng))
    draw = random.Random(0)
    ref = sim.window(pools, sim.rows(pools, sim.Traffic(), 300, draw), rng)
    cur = sim.window(pools, sim.rows(pools, sim.Traffic(shift=0.5), 300, draw), rng)
    metrics = window_metrics(
        sim.KEY, T0, T0, cur=cur, ref=ref, reference="first_n", tests=sim.Tests()
    )
    names = {m.name for m in metrics}
    assert {"drift_embedding_score", "bias_segment_gap", "drift_feature_ks"} <= names
    for m in metrics:
        entry = spec(m.name)
        assert set(m.labels) == set(entry.all_labels), m.name
        if m.p_value is not None:
            assert m.p_value_raw is not None and m.p_value >= m.p_value_raw


def _fake_unit_vectors(texts, rng):
    """Stand-in vectors: this test checks names and labels, not the statistics."""
    import numpy as np

    v = rng.normal(size=(len(texts), 384)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_every_shipped_rule_watches_a_catalogued_metric():
    for rule in load_rules(env={}).rules:
        assert rule.metric in CATALOGUE, rule.name


def test_every_dashboard_metric_is_catalogued():
    used = set()
    for path in (ROOT / "grafana" / "dashboards").glob("*.json"):
        used |= set(re.findall(r"name = '([a-z0-9_]+)'", path.read_text()))
    assert used and used <= set(CATALOGUE), used - set(CATALOGUE)
