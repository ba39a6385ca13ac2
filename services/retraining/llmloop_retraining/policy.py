"""When to retrain a model: enough new pairs, too long since the last job, or an alert.

A policy per model (with defaults for the rest) comes from a YAML file::

    default:
      min_new_pairs: 200        # this many pairs since the last job starts one
      max_interval: 7d          # ...and after this long, any new pair does
      cooldown: 6h              # never two jobs closer than this
      alert_rules: [embedding_drift, negative_feedback_rate]
    models:
      gpt-4o-mini: {min_new_pairs: 500, launcher: kubernetes}

``decide`` is a pure function of the policy, the model's state and the clock;
the service calls it after each batch and on a timer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from llmloop.events import AlertStateChanged
from llmloop_retraining.evaluate import GateConfig

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> timedelta:
    """``90s``, ``15m``, ``6h``, ``7d``, ``2w``, a number of seconds, or a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration; write e.g. 90s, 15m, 6h, 7d or 2w")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


class TriggerPolicy(BaseModel):
    """One model's retraining policy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    min_new_pairs: int = Field(default=200, ge=1)
    max_interval: timedelta | None = Field(
        default=timedelta(days=7), description="Retrain on any new pair after this long."
    )
    min_pairs_for_interval: int = Field(default=1, ge=1)
    cooldown: timedelta = Field(default=timedelta(hours=6))
    alert_rules: tuple[str, ...] = Field(
        default=(),
        description="Alert rules whose firing (for this model) starts a job: at once, or, "
        "when the model has too few pairs or is in its cooldown then, as soon as it may, "
        "if the alert is still firing. One job per firing.",
    )
    min_total_pairs: int = Field(default=16, ge=2, description="Never train on fewer pairs.")
    launcher: Literal["local", "kubernetes"] | None = Field(
        default=None, description="Where this model's jobs run; default LLMLOOP_RETRAIN_LAUNCHER."
    )
    base_model: str | None = Field(
        default=None, description="What the job fine-tunes (a local path); default: the model."
    )
    train: dict[str, Any] = Field(default_factory=dict, description="Job hyper-parameters.")
    gate: GateConfig = Field(default_factory=GateConfig)

    @field_validator("max_interval", "cooldown", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)


class PolicyBook(BaseModel):
    """Policies by model, with a default for models the file does not name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    default: TriggerPolicy = Field(default_factory=TriggerPolicy)
    models: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def for_model(self, model: str) -> TriggerPolicy:
        override = self.models.get(model)
        if not override:
            return self.default
        return TriggerPolicy.model_validate({**self.default.model_dump(), **override})

    @classmethod
    def load(cls, path: Path | None) -> PolicyBook:
        """Read a YAML policy file; None gives the defaults."""
        if path is None:
            return cls()
        import yaml

        try:
            data = yaml.safe_load(path.read_text()) or {}
        except OSError as exc:
            raise ValueError(f"retrain policy file {path}: {exc.strerror}") from exc
        book = cls.model_validate(data)
        for model in book.models:
            book.for_model(model)  # fail at start on a bad override, naming its model
        return book


@dataclass(frozen=True)
class ModelState:
    """What the policy needs to know about one model."""

    new_pairs: int
    total_pairs: int
    last_job_at: datetime | None
    job_running: bool = False


@dataclass(frozen=True)
class Decision:
    start: bool
    reason: str


def alert_matches(policy: TriggerPolicy, alert: AlertStateChanged, model: str) -> bool:
    """A firing alert of a listed rule about this model (or about no model in particular)."""
    return (
        alert.status == "firing"
        and alert.rule in policy.alert_rules
        and alert.labels.get("model", model) == model
    )


def decide(
    policy: TriggerPolicy,
    state: ModelState,
    now: datetime,
    *,
    alert: AlertStateChanged | None = None,
    manual: bool = False,
) -> Decision:
    """Whether to start a job for a model now, and why (or why not)."""
    if state.job_running:
        return Decision(False, "a job for this model is running")
    if state.total_pairs < policy.min_total_pairs:
        return Decision(
            False, f"{state.total_pairs} pairs in total; at least {policy.min_total_pairs} needed"
        )
    if manual:
        return Decision(True, "requested by hand")
    if not policy.enabled:
        return Decision(False, "automatic retraining is disabled for this model")
    if state.last_job_at is not None and now - state.last_job_at < policy.cooldown:
        return Decision(False, f"in cooldown until {(state.last_job_at + policy.cooldown):%F %T}")
    if alert is not None:
        return Decision(True, f"alert {alert.rule} is firing ({alert.fingerprint})")
    if state.new_pairs >= policy.min_new_pairs:
        return Decision(True, f"{state.new_pairs} new pairs (threshold {policy.min_new_pairs})")
    if (
        policy.max_interval is not None
        and state.new_pairs >= policy.min_pairs_for_interval
        # Measured from the last job: a model never trained waits for min_new_pairs.
        and state.last_job_at is not None
        and now - state.last_job_at >= policy.max_interval
    ):
        return Decision(True, f"{state.new_pairs} new pairs and the interval has passed")
    return Decision(False, f"{state.new_pairs} new pairs; {policy.min_new_pairs} needed")
