"""Rules over a sequence of metric windows, as the service evaluates them, in memory.

No bus, no journal, no webhooks: each window's metrics go through
``Rule.applies_to``, ``Rule.breached`` and the state machine (``state.observe``)
at the window's end, and the outcome counts what on-call would have seen. The
soundness bench and tests use it to measure the shipped rules end to end.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from llmloop.events import MetricComputed
from llmloop_alerting.rules import RuleSet, load_rules
from llmloop_alerting.state import AlertState, new_state, observe


@dataclass
class Outcome:
    """What the rules did over one stream, per rule name."""

    evaluations: dict[str, int] = field(default_factory=dict)  # windows the rule decided on
    breaches: dict[str, int] = field(default_factory=dict)  # of those, how many breached
    fired: dict[str, list[int]] = field(default_factory=dict)  # window index of each fire
    resolved: dict[str, list[int]] = field(default_factory=dict)

    def first_fire(self, rule: str) -> int | None:
        return min(self.fired.get(rule, []), default=None)

    def pages(self, rules: Iterable[str] | None = None) -> int:
        names = set(self.fired) if rules is None else set(rules)
        return sum(len(v) for k, v in self.fired.items() if k in names)


class Replay:
    """Feeds windows of metrics to a rule set and keeps every alert's state."""

    def __init__(self, rules: RuleSet | None = None) -> None:
        self.rules = rules or load_rules()
        self.states: dict[str, AlertState] = {}
        self.outcome = Outcome()

    def window(self, index: int, now: datetime, metrics: Iterable[MetricComputed]) -> None:
        out = self.outcome
        for metric in metrics:
            for rule in self.rules.rules_for(metric.name):
                if not rule.applies_to(metric):
                    continue
                fingerprint = rule.fingerprint(metric.project_id, rule.alert_labels(metric))
                before = self.states.get(fingerprint) or new_state(rule, metric)
                state, actions = observe(rule, before, metric, now)
                self.states[fingerprint] = state
                if state.observed_until != before.observed_until:  # decided on this window
                    out.evaluations[rule.name] = out.evaluations.get(rule.name, 0) + 1
                    out.breaches[rule.name] = out.breaches.get(rule.name, 0) + state.breached
                for action in actions:
                    if action.kind in ("fire", "resolve"):
                        seen = out.fired if action.kind == "fire" else out.resolved
                        seen.setdefault(rule.name, []).append(index)

    def run(self, windows: Iterable[tuple[int, datetime, list[MetricComputed]]]) -> Outcome:
        for index, now, metrics in windows:
            self.window(index, now, metrics)
        return self.outcome
