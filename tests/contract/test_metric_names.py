"""The processor, the alert rules and the dashboards agree on metric names.

A rule or a panel on a metric nobody publishes would stay silent forever.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import yaml

from llmloop_alerting.rules import default_rules_path
from llmloop_processor import stats

ROOT = Path(__file__).resolve().parents[2]


def published() -> set[str]:
    """Every name the processor's statistics add to a window's metrics."""
    return set(re.findall(r'\.add\(\s*"([a-z0-9_]+)"', inspect.getsource(stats)))


def test_processor_publishes_the_documented_metrics():
    names = published()
    assert {"drift_embedding_mmd", "bias_gap", "feedback_thumbs_up_rate", "latency_p95_ms"} <= names
    for name in names:
        assert name in stats.__doc__, f"{name} is published but not documented in stats.py"


def test_every_default_alert_rule_watches_a_published_metric():
    rules = yaml.safe_load(default_rules_path().read_text())["rules"]
    missing = {r["name"]: r["metric"] for r in rules if r["metric"] not in published()}
    assert not missing, f"rules on metrics nobody publishes: {missing}"


def test_every_dashboard_metric_is_published():
    used = set()
    for path in (ROOT / "grafana" / "dashboards").glob("*.json"):
        used |= set(re.findall(r"name = '([a-z0-9_]+)'", path.read_text()))
    assert used and used <= published(), used - published()
