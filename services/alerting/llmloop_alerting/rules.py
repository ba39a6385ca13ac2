"""Alert rules and receivers, read from YAML and validated with errors that name the rule.

A rules file::

    receivers:
      - name: oncall
        type: webhook                       # webhook | slack | pagerduty
        url: ${LLMLOOP_ALERTING_WEBHOOK_URL}  # ${VAR} / ${VAR:-default} from the environment
    rules:
      - name: prompt-embedding-drift
        metric: drift_embedding_score       # a name from the metric catalogue
        match: {field: prompt}              # exact label matchers
        match_re: {model: "gpt-4o.*"}       # regex matchers (whole value)
        op: ">"
        threshold: 2                        # in the metric's unit (here: multiples of chance)
        p_value_below: 0.01                 # statistical metrics: also significant (adjusted)
        min_sample_size: 100                # rows the test used of the window
        confirm: 2                          # breaching windows before it fires ...
        confirm_of: 3                       # ... among the last 3 evaluated (k of m)
        resolve_after: 3                    # quiet windows in a row before it resolves
        resolve_threshold: 1                # while firing, a window is quiet only below this
        windows: auto                       # auto | all | non_overlapping
        for: 0s                             # and breached this long (wall clock)
        severity: warning
        renotify: 4h                        # again while still firing; 0 = never
        no_data: keep                       # keep | resolve | alert, after no_data_after
        annotations: {summary: "...", runbook_url: "https://..."}
        receivers: [oncall]

The metric catalogue (``llmloop.contracts.metrics``) checks each rule: the
metric must exist, matchers may only name labels it carries (and values of its
closed vocabularies), ``p_value_below`` needs a metric with a test, and the
threshold must be a value of the metric's unit; a metric whose unit depends on a
label (bias gaps) needs a matcher that picks one.

``windows: auto`` evaluates a metric with a p-value only on windows that do not
overlap the last one evaluated: windows every minute over five minutes share 80%
of their rows, so one chance excursion would otherwise breach five times in a
row and ``confirm`` would confirm nothing.

Evaluation is pure: ``Rule.applies_to`` and ``Rule.breached`` look at one metric.
"""

from __future__ import annotations

import hashlib
import operator
import os
import re
import string
from collections.abc import Callable, Mapping
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from llmloop.contracts.metrics import CATALOGUE, UNITS
from llmloop.events import MetricComputed
from llmloop.urls import redact_url

_DURATION = re.compile(
    r"^\s*(?:(\d+(?:\.\d+)?)d)?\s*(?:(\d+(?:\.\d+)?)h)?\s*"
    r"(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s)?\s*$"
)
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"

OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


def parse_duration(value: Any) -> timedelta:
    """``90``, ``"90s"``, ``"5m"``, ``"1h30m"``, ``"2d"`` -> timedelta (numbers are seconds)."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m, 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match or not any(match.groups()):
            raise ValueError(f"{value!r} is not a duration; use e.g. 30s, 5m, 1h30m, 2d")
        d, h, m, s = (float(g or 0) for g in match.groups())
        seconds = d * 86400 + h * 3600 + m * 60 + s
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return timedelta(seconds=seconds)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


class RulesError(ValueError):
    """A rules file is unreadable or invalid; ``problems`` has one line per error."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


class Receiver(BaseModel):
    """Where notifications go. An empty ``url`` (an unset ``${VAR}``) disables the receiver."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Name
    type: Literal["webhook", "slack", "pagerduty"] = "webhook"
    url: str = ""
    # PagerDuty Events API v2: the integration's routing key (required there).
    routing_key: str = ""
    # Per-receiver signing secret; the service-wide secret when empty.
    secret: str = ""
    timeout: Duration = timedelta(seconds=5)
    max_attempts: int = Field(default=6, ge=1, le=100)
    headers: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _defaults(self) -> Receiver:
        if self.type == "pagerduty" and not self.url:
            object.__setattr__(self, "url", "https://events.pagerduty.com/v2/enqueue")
        if self.url and not re.match(r"^https?://", self.url):
            # Not echoed whole: a webhook URL's path or query is often its credential.
            raise ValueError(
                f"url {redact_url(self.url, keep_path=False)!r} must start with http:// or https://"
            )
        return self

    @property
    def enabled(self) -> bool:
        if self.type == "pagerduty":
            return bool(self.url and self.routing_key)
        return bool(self.url)


class Rule(BaseModel):
    """One threshold on one metric, evaluated separately for each label set."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    name: Name
    metric: Annotated[str, Field(min_length=1, max_length=256)]
    match: dict[str, str] = Field(default_factory=dict)
    match_re: dict[str, str] = Field(default_factory=dict)
    op: Literal[">", ">=", "<", "<=", "==", "!="] = ">"
    threshold: float = Field(allow_inf_nan=False)
    p_value_below: float | None = Field(default=None, gt=0, le=1)
    min_sample_size: int = Field(default=0, ge=0)
    confirm: int = Field(default=1, ge=1, le=100)
    confirm_of: int | None = Field(default=None, ge=1, le=100)
    resolve_after: int = Field(default=1, ge=1, le=100)
    resolve_threshold: float | None = Field(default=None, allow_inf_nan=False)
    windows: Literal["auto", "all", "non_overlapping"] = "auto"
    for_: Duration = Field(default=timedelta(0), alias="for")
    severity: Literal["info", "warning", "critical"] = "warning"
    renotify: Duration = timedelta(hours=4)
    no_data: Literal["keep", "resolve", "alert"] = "keep"
    no_data_after: Duration = timedelta(minutes=30)
    send_resolved: bool = True
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    receivers: list[Name] = Field(default_factory=list)

    @field_validator("match_re")
    @classmethod
    def _regexes_compile(cls, value: dict[str, str]) -> dict[str, str]:
        for label, pattern in value.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"label {label!r}: bad regex {pattern!r}: {exc}") from None
        return value

    @field_validator("annotations")
    @classmethod
    def _templates_parse(cls, value: dict[str, str]) -> dict[str, str]:
        for key, text in value.items():
            try:
                list(string.Formatter().parse(text))
            except ValueError as exc:
                raise ValueError(f"{key}: bad template {text!r}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _no_data_window(self) -> Rule:
        if self.no_data != "keep" and self.no_data_after <= timedelta(0):
            raise ValueError("no_data_after must be positive when no_data is not 'keep'")
        return self

    @property
    def confirm_window(self) -> int:
        """How many of the last evaluated windows ``confirm`` counts breaches among."""
        return self.confirm_of or self.confirm

    @model_validator(mode="after")
    def _confirm_fits(self) -> Rule:
        if self.confirm_of is not None and self.confirm_of < self.confirm:
            raise ValueError(
                f"confirm_of {self.confirm_of} must be at least confirm {self.confirm} "
                f"({self.confirm} breaching windows among the last confirm_of)"
            )
        return self

    @model_validator(mode="after")
    def _hysteresis_on_the_safe_side(self) -> Rule:
        t, r = self.threshold, self.resolve_threshold
        if r is not None and (
            (self.op in (">", ">=") and r > t) or (self.op in ("<", "<=") and r < t)
        ):
            raise ValueError(
                f"resolve_threshold {r} must not be beyond threshold {t} (op {self.op!r}): "
                "a firing alert would resolve while the metric still breaches"
            )
        return self

    def non_overlapping(self) -> bool:
        """Evaluate only windows that do not overlap the last evaluated one."""
        if self.windows == "auto":
            entry = CATALOGUE.get(self.metric)
            return entry is not None and entry.p_value
        return self.windows == "non_overlapping"

    def applies_to(self, metric: MetricComputed) -> bool:
        """Same metric name, and every label matcher holds."""
        if metric.name != self.metric:
            return False
        labels = metric.labels
        if any(labels.get(k) != v for k, v in self.match.items()):
            return False
        return all(re.fullmatch(p, labels.get(k, "")) for k, p in self.match_re.items())

    def breached(self, metric: MetricComputed) -> bool:
        """The threshold is crossed (and significant, and on enough samples, where asked)."""
        if metric.sample_size < self.min_sample_size:
            return False
        if self.p_value_below is not None and (
            metric.p_value is None or metric.p_value >= self.p_value_below
        ):
            return False
        return OPS[self.op](metric.value, self.threshold)

    def still_breached(self, metric: MetricComputed) -> bool:
        """While firing: the window is not yet quiet (beyond ``resolve_threshold`` if set)."""
        if self.resolve_threshold is None:
            return self.breached(metric)
        if metric.sample_size < self.min_sample_size:
            return True  # too small to tell: not evidence that it recovered
        return OPS[self.op](metric.value, self.resolve_threshold)

    def alert_labels(self, metric: MetricComputed) -> dict[str, str]:
        """The labels that identify one alert of this rule: the metric's plus the rule's."""
        return {**metric.labels, **self.labels}

    def fingerprint(self, project_id: str | None, labels: Mapping[str, str]) -> str:
        """Stable id of (rule, project, label set): the dedup key everywhere, PagerDuty's too."""
        text = "\x1f".join(
            [self.name, project_id or ""] + [f"{k}={v}" for k, v in sorted(labels.items())]
        )
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def render_annotations(self, context: Mapping[str, Any]) -> dict[str, str]:
        """Annotations with ``{value}``, ``{threshold}``, ``{labels[model]}``... filled in."""
        return {k: _render(v, context) for k, v in self.annotations.items()}


def _render(template: str, context: Mapping[str, Any]) -> str:
    try:
        return template.format_map(_Lenient(context))
    except (KeyError, IndexError, ValueError, AttributeError, TypeError):
        return template  # a typo in a template must never stop an alert


class _Lenient(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class RuleSet(BaseModel):
    """A whole rules file: receivers and rules, cross-checked."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    receivers: list[Receiver] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)

    @property
    def receivers_by_name(self) -> dict[str, Receiver]:
        return {r.name: r for r in self.receivers}

    def rules_for(self, metric_name: str) -> list[Rule]:
        return [r for r in self.rules if r.metric == metric_name]


def _cross_check(rule_set: RuleSet) -> list[str]:
    problems: list[str] = []
    seen: set[str] = set()
    for i, receiver in enumerate(rule_set.receivers):
        if receiver.name in seen:
            problems.append(f"receivers[{i}] {receiver.name!r}: name: used twice")
        seen.add(receiver.name)
    names: set[str] = set()
    known = ", ".join(sorted(seen)) or "none defined"
    for i, rule in enumerate(rule_set.rules):
        where = f"rules[{i}] {rule.name!r}"
        if rule.name in names:
            problems.append(f"{where}: name: used twice")
        names.add(rule.name)
        for receiver in rule.receivers:
            if receiver not in seen:
                problems.append(f"{where}: receivers: unknown receiver {receiver!r} ({known})")
        problems += [f"{where}: {p}" for p in catalogue_problems(rule)]
    return problems


def catalogue_problems(rule: Rule) -> list[str]:
    """What the metric catalogue says is wrong with a rule, one ``field: message`` each."""
    entry = CATALOGUE.get(rule.metric)
    if entry is None:
        return [f"metric: unknown metric {rule.metric!r} (known: {', '.join(CATALOGUE)})"]
    problems = []
    labels = entry.all_labels
    for section in ("match", "match_re"):
        for label in getattr(rule, section):
            if label not in labels:
                problems.append(
                    f"{section}.{label}: {rule.metric} has no label {label!r} "
                    f"(labels: {', '.join(labels)})"
                )
    for label, value in rule.match.items():
        allowed = entry.values.get(label)
        if allowed is not None and value not in allowed:
            problems.append(
                f"match.{label}: {value!r} is never a {label} of {rule.metric} "
                f"(one of: {', '.join(allowed)})"
            )
    if rule.p_value_below is not None and not entry.p_value:
        problems.append(f"p_value_below: {rule.metric} carries no p-value")
    unit_name = entry.unit_for(rule.match)
    if unit_name is None:
        (label,) = entry.unit_by
        units = ", ".join(f"{v}: {u}" for v, u in entry.unit_by[label].items())
        problems.append(
            f"match.{label}: {rule.metric} is in a different unit per {label} ({units}); "
            f"match one {label}"
        )
        return problems
    unit = UNITS[unit_name]
    for field, value in (
        ("threshold", rule.threshold),
        ("resolve_threshold", rule.resolve_threshold),
    ):
        if value is not None and not unit.low <= value <= unit.high:
            problems.append(
                f"{field}: {value} is not a value of {rule.metric} (unit {unit.name}: "
                f"{unit.description})"
            )
    return problems


def _expand_env(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return _ENV.sub(lambda m: env.get(m[1], m[2] if m[2] is not None else ""), node)
    if isinstance(node, list):
        return [_expand_env(v, env) for v in node]
    if isinstance(node, dict):
        return {k: _expand_env(v, env) for k, v in node.items()}
    return node


def _describe(error: Mapping[str, Any], raw: Any) -> str:
    loc = list(error["loc"])
    where = ""
    if len(loc) >= 2 and loc[0] in ("rules", "receivers") and isinstance(loc[1], int):
        section, index = loc[0], loc[1]
        items = raw.get(section) if isinstance(raw, dict) else None
        name = (
            items[index].get("name")
            if isinstance(items, list) and isinstance(items[index], dict)
            else None
        )
        where = f"{section}[{index}]" + (f" {name!r}" if name else "") + ": "
        loc = loc[2:]
    field = ".".join(str(p) for p in loc if p != "function-after[_defaults()]")
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}{field or '(whole entry)'}: {message}"


def parse_rules(
    text: str, *, source: str = "<rules>", env: Mapping[str, str] | None = None
) -> RuleSet:
    """Parse and validate a rules document; raises ``RulesError`` naming rule and field."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulesError(source, [f"not valid YAML: {exc}"]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RulesError(source, ["expected a mapping with 'receivers' and 'rules'"])
    expanded = _expand_env(raw, os.environ if env is None else env)
    try:
        rule_set = RuleSet.model_validate(expanded)
    except ValidationError as exc:
        raise RulesError(source, [_describe(e, raw) for e in exc.errors()]) from None
    problems = _cross_check(rule_set)
    if problems:
        raise RulesError(source, problems)
    return rule_set


def default_rules_path() -> Path:
    """The rule set shipped with llmloop: drift, bias gap, toxicity, feedback, latency, cost."""
    return Path(str(resources.files("llmloop_alerting") / "default_rules.yaml"))


def load_rules(path: Path | None = None, *, env: Mapping[str, str] | None = None) -> RuleSet:
    """Read a rules file (the shipped default when ``path`` is None)."""
    path = path or default_rules_path()
    try:
        text = path.read_text()
    except OSError as exc:
        raise RulesError(str(path), [f"cannot read: {exc.strerror or exc}"]) from None
    return parse_rules(text, source=str(path), env=env)
