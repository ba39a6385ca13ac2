"""Event contracts, v1: every event that crosses the bus, in one place.

Wire rules (see DESIGN.md, "Contracts"):

* ``event_id`` is a UUID made by the client; it is the idempotency key, so a
  re-sent or redelivered event never counts twice downstream.
* ``type`` is a stable wire name, independent of the class and module names.
* ``project_id`` is set by ingest from the API key; whatever a client puts in
  the body is overwritten.
* v1 grows only by optional fields, each with a comment saying why. A change
  that would break a v1 consumer goes into a v2 model and topic, side by side.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, TypeAlias, TypeVar

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    field_validator,
    model_validator,
)

# Limits a user relies on: big enough for real prompts (a long RAG context is
# ~100k tokens, ~400k characters), small enough that one event can never take
# a service down.
MAX_TEXT_CHARS = 1_000_000
MAX_NAME_CHARS = 256
MAX_LABELS = 64
MAX_LABEL_VALUE_CHARS = 1_024
MAX_TAGS = 64
MAX_METADATA_BYTES = 64 * 1024
MAX_METADATA_DEPTH = 8
MAX_MESSAGES = 1_000
# Clocks drift and batches sit in SDK spools; further than this is a bug.
MAX_FUTURE_SKEW = timedelta(hours=24)
EARLIEST_TIMESTAMP = datetime(2000, 1, 1, tzinfo=UTC)

PROJECT_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"


_latest = (0.0, EARLIEST_TIMESTAMP)  # (valid until, in monotonic s; the latest timestamp allowed)


def _latest_allowed() -> datetime:
    """Now plus the allowed skew, read from the clock at most once a second: every
    timestamp of every event is checked against it, at ingest and in each consumer."""
    global _latest
    until, latest = _latest
    now = time.monotonic()
    if now >= until:
        latest = datetime.now(UTC) + MAX_FUTURE_SKEW
        _latest = (now + 1.0, latest)
    return latest


def _utc(value: datetime) -> datetime:
    """Naive timestamps are taken as UTC; aware ones are converted to UTC."""
    try:
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        elif value.tzinfo is not UTC:
            value = value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is in year 0 in UTC
        raise ValueError(f"timestamp {value.isoformat()} is out of range in UTC") from None
    if value < EARLIEST_TIMESTAMP:
        raise ValueError(f"timestamp {value.isoformat()} is before {EARLIEST_TIMESTAMP.year}")
    if value > _latest_allowed():
        raise ValueError(
            f"timestamp {value.isoformat()} is more than "
            f"{int(MAX_FUTURE_SKEW.total_seconds() // 3600)} h in the future; check the clock"
        )
    return value


def _now() -> datetime:
    return datetime.now(UTC)


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` is more than ``limit`` levels deep ({"a": 1} is 2 levels).

    Breadth first, stopping at the limit: JSON parsers accept ~1,000 levels, and
    the recursive walk this replaces hit Python's recursion limit (a 500 in ingest).
    """
    level, nodes = 1, [value]
    while nodes:
        children = [
            child
            for node in nodes
            if isinstance(node, dict | list)
            for child in (node.values() if isinstance(node, dict) else node)
        ]
        if children:  # a scalar inside a container is a level too, as it always was
            level += 1
            if level > limit:
                return True
        nodes = children
    return False


def _json_size(value: dict[str, Any]) -> dict[str, Any]:
    if not value:  # most events: every consumer validates it again, so keep it free
        return value
    if _deeper_than(value, MAX_METADATA_DEPTH):
        raise ValueError(f"nested deeper than {MAX_METADATA_DEPTH} levels")
    size = len(orjson.dumps(value))
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"{size} bytes as JSON; the limit is {MAX_METADATA_BYTES}")
    return value


Timestamp = Annotated[datetime, AfterValidator(_utc)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_CHARS)]
OptionalName = Annotated[str, StringConstraints(max_length=MAX_NAME_CHARS)] | None
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)]
LabelKey = Annotated[str, StringConstraints(min_length=1, max_length=128)]
LabelValue = Annotated[str, StringConstraints(max_length=MAX_LABEL_VALUE_CHARS)]
Labels = Annotated[dict[LabelKey, LabelValue], Field(max_length=MAX_LABELS)]
Metadata = Annotated[dict[str, Any], AfterValidator(_json_size)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=128)]
NonNegativeInt = Annotated[int, Field(ge=0, le=2**31)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class Event(BaseModel):
    """Fields every event carries."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_max_length=MAX_TEXT_CHARS)

    event_id: uuid.UUID = Field(
        default_factory=uuid.uuid4,
        description="Made by the client; the idempotency key. Re-sending it is harmless.",
    )
    timestamp: Timestamp = Field(
        default_factory=_now, description="When it happened (UTC; naive values are read as UTC)."
    )
    project_id: str | None = Field(
        default=None,
        pattern=PROJECT_ID_PATTERN,
        description="Set by ingest from the API key; a value sent by a client is ignored.",
    )

    def key(self) -> bytes:
        """The bus key: events about one completion share a key, hence a partition."""
        return self.event_id.bytes


# Added within v1 (issue 13, OpenTelemetry GenAI): the structured parts of a message
# as the GenAI semantic conventions define them (gen_ai.input.messages /
# gen_ai.output.messages), so a tool call, a tool result, reasoning, an image or a
# file reference is kept as what it is instead of being flattened into the text.
class MessagePart(BaseModel):
    """One part of a chat message: ``text``, ``tool_call``, ``tool_call_response``,
    ``reasoning``, ``blob``, ``uri``, ``file`` (or another type, kept as sent).

    Text is verbatim, never JSON-decoded. ``arguments`` and ``response`` hold a tool
    call's arguments and result as JSON text (a string sent as a string stays as sent).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Name
    content: Text | None = Field(
        default=None, description="text and reasoning: the text; blob: base64 data."
    )
    id: OptionalName = Field(default=None, description="The tool call's id.")
    name: OptionalName = Field(default=None, description="The tool's name.")
    arguments: Text | None = None
    response: Text | None = None
    mime_type: OptionalName = None
    modality: OptionalName = None
    uri: Annotated[str, StringConstraints(max_length=8192)] | None = None
    file_id: OptionalName = None


class ChatMessage(BaseModel):
    """One message of a chat prompt (OpenAI-style roles)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: Text = Field(description="The text of the message (its text parts only).")
    name: OptionalName = None
    # Added within v1 (issue 13): the message's parts when it has more than text.
    parts: Annotated[list[MessagePart], Field(max_length=MAX_MESSAGES)] | None = None
    # Added within v1 (issue 13): why the model stopped, on an output message (a choice).
    finish_reason: OptionalName = None


class CompletionLogged(Event):
    """An LLM call that happened in an app: what was asked, what came back, at what cost."""

    type: Literal["completion"] = "completion"
    trace_id: OptionalName = None
    parent_id: OptionalName = Field(default=None, description="The step before this in a chain.")
    model: Name
    model_version: OptionalName = None
    prompt_template: OptionalName = None
    prompt_version: OptionalName = None
    prompt: Text | Annotated[list[ChatMessage], Field(min_length=1, max_length=MAX_MESSAGES)]
    completion: Text
    prompt_tokens: NonNegativeInt | None = None
    completion_tokens: NonNegativeInt | None = None
    latency_ms: NonNegativeFloat | None = None
    cost_usd: NonNegativeFloat | None = Field(
        default=None, description="Computed from the price table when absent."
    )
    user_id: OptionalName = None
    session_id: OptionalName = None
    attributes: Labels = Field(
        default_factory=dict,
        description="Segments that bias statistics group by, e.g. locale, plan, age band.",
    )
    metadata: Metadata = Field(default_factory=dict)
    tags: Annotated[list[Tag], Field(max_length=MAX_TAGS)] = Field(default_factory=list)
    # Added within v1 (issue 13, OpenTelemetry GenAI ingest): what the GenAI semantic
    # conventions carry and a completion had no place for. All optional, so SDK users
    # and consumers of the older fields see nothing new.
    choices: Annotated[list[ChatMessage], Field(max_length=MAX_MESSAGES)] | None = Field(
        default=None,
        description="Every choice (n > 1) as an assistant message with its parts; "
        "`completion` is the text of the first.",
    )
    span_id: OptionalName = Field(default=None, description="The OTel span of the call.")
    request_model: OptionalName = None
    response_model: OptionalName = None
    response_id: OptionalName = Field(
        default=None,
        description="The provider's id of the response; a second copy of one call "
        "(two instrumentations) is dropped per project on it.",
    )
    finish_reasons: Annotated[list[Name], Field(max_length=MAX_MESSAGES)] | None = None
    cache_read_tokens: NonNegativeInt | None = Field(
        default=None, description="Input tokens served from the provider's cache."
    )
    cache_write_tokens: NonNegativeInt | None = Field(
        default=None, description="Input tokens written to the provider's cache."
    )
    reasoning_tokens: NonNegativeInt | None = Field(
        default=None, description="Output tokens spent on reasoning."
    )
    error_type: OptionalName = Field(
        default=None,
        description="The call failed (OTel `error.type`: an exception class or HTTP status); "
        "`completion` is then empty, not an answer.",
    )

    def prompt_text(self) -> str:
        """The prompt as one string (chat messages joined by role)."""
        if isinstance(self.prompt, str):
            return self.prompt
        return "\n".join(f"{m.role}: {m.content}" for m in self.prompt)


# Added within v1 (issue 13): the content of an OpenTelemetry GenAI call that arrives
# apart from its span, as OTLP log records (the deprecated gen_ai.user.message /
# gen_ai.choice events, or gen_ai.client.inference.operation.details). Ingest is
# stateless and its replicas never see both halves together, so it publishes this
# as its own event keyed by the completion's id (hence on the completion's
# partition, in order), and the processor's writer joins it to the completion row,
# whichever arrives first. A new wire type: consumers of "completion" see nothing new.
class CompletionContentLogged(Event):
    """Messages and choices of the completion ``completion_id``, sent apart from it."""

    type: Literal["completion_content"] = "completion_content"
    completion_id: uuid.UUID = Field(description="The event_id of the completion (its span).")
    trace_id: OptionalName = None
    span_id: OptionalName = None
    model: OptionalName = None
    prompt: Annotated[list[ChatMessage], Field(max_length=MAX_MESSAGES)] = Field(
        default_factory=list
    )
    choices: Annotated[list[ChatMessage], Field(max_length=MAX_MESSAGES)] = Field(
        default_factory=list
    )

    def key(self) -> bytes:
        return self.completion_id.bytes


class FeedbackGiven(Event):
    """Fields every kind of feedback carries. Concrete kinds below."""

    type: Literal["feedback"] = "feedback"
    completion_id: uuid.UUID = Field(description="The event_id of the completion this is about.")
    source: Literal["user", "annotator", "judge"] = "user"
    user_id: OptionalName = None
    comment: Text | None = Field(default=None, description="Free text that may accompany any kind.")
    metadata: Metadata = Field(default_factory=dict)
    # Added within v1 (issue 13): an OpenTelemetry `gen_ai.evaluation.result` names the
    # evaluation (relevance, toxicity ...) and may give a label beside or instead of a score.
    evaluation: OptionalName = Field(default=None, description="The evaluation's name.")
    label: OptionalName = Field(default=None, description="A categorical verdict, e.g. pass.")

    def key(self) -> bytes:
        return self.completion_id.bytes


class ThumbsFeedback(FeedbackGiven):
    """A thumbs up (+1) or down (-1)."""

    kind: Literal["thumbs"] = "thumbs"
    value: Literal[1, -1]


class ScoreFeedback(FeedbackGiven):
    """A number on a scale, e.g. 1-5 stars (scale_min=1, scale_max=5)."""

    kind: Literal["score"] = "score"
    scale_min: float = Field(default=0.0, allow_inf_nan=False)
    scale_max: float = Field(default=1.0, allow_inf_nan=False)
    value: float = Field(allow_inf_nan=False)

    @field_validator("value")
    @classmethod
    def _within_scale(cls, value: float, info: Any) -> float:
        low, high = info.data.get("scale_min"), info.data.get("scale_max")
        if low is not None and high is not None and not low <= value <= high:
            raise ValueError(f"score {value} is outside its scale [{low}, {high}]")
        return value

    @field_validator("scale_max")
    @classmethod
    def _scale_ordered(cls, value: float, info: Any) -> float:
        low = info.data.get("scale_min")
        if low is not None and value <= low:
            raise ValueError(f"scale_max {value} must be greater than scale_min {low}")
        return value


class CommentFeedback(FeedbackGiven):
    """Free-text feedback."""

    kind: Literal["comment"] = "comment"
    comment: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS)]


class CorrectionFeedback(FeedbackGiven):
    """The text the user wanted instead of the completion."""

    kind: Literal["correction"] = "correction"
    correction: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS)]


class PreferenceFeedback(FeedbackGiven):
    """A choice between two completions of the same prompt.

    ``completion_id`` defaults to ``chosen_id`` so that the pair is keyed by
    (and partitioned with) the chosen completion.
    """

    kind: Literal["preference"] = "preference"
    completion_id: uuid.UUID = Field(default=None, validate_default=False)  # type: ignore[assignment]
    chosen_id: uuid.UUID
    rejected_id: uuid.UUID

    @model_validator(mode="before")
    @classmethod
    def _default_completion_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("completion_id") is None and "chosen_id" in data:
            data = {**data, "completion_id": data["chosen_id"]}
        return data

    @field_validator("rejected_id")
    @classmethod
    def _distinct(cls, value: uuid.UUID, info: Any) -> uuid.UUID:
        if value == info.data.get("chosen_id"):
            raise ValueError("rejected_id must differ from chosen_id")
        return value


Feedback: TypeAlias = Annotated[
    ThumbsFeedback | ScoreFeedback | CommentFeedback | CorrectionFeedback | PreferenceFeedback,
    Field(discriminator="kind"),
]


class MetricComputed(Event):
    """A statistic over a window (drift, bias, feedback rates), published by the processor."""

    type: Literal["metric"] = "metric"
    name: Name
    value: float = Field(allow_inf_nan=False)
    labels: Labels = Field(default_factory=dict)
    window_start: Timestamp
    window_end: Timestamp
    sample_size: NonNegativeInt
    p_value: float | None = Field(default=None, ge=0, le=1)
    # Added within v1 (issue 12, alarms): a window runs many tests, so ``p_value`` is
    # adjusted for multiplicity (Holm over the metric's family, see the metric
    # catalogue) and the test's own value is kept here; ``sample_size`` is what the
    # test used of the current window, ``rows_total`` the window's rows before
    # duplicates and sessions were collapsed, ``reference_size`` the reference's rows.
    p_value_raw: float | None = Field(default=None, ge=0, le=1)
    reference_size: NonNegativeInt | None = None
    rows_total: NonNegativeInt | None = None

    def key(self) -> bytes:
        return self.name.encode()


class AlertStateChanged(Event):
    """An alert started firing or resolved."""

    type: Literal["alert"] = "alert"
    rule: Name
    status: Literal["firing", "resolved"]
    fingerprint: Name
    severity: Literal["info", "warning", "critical"] = "warning"
    labels: Labels = Field(default_factory=dict)
    annotations: Labels = Field(default_factory=dict)
    value: float | None = Field(default=None, allow_inf_nan=False)
    threshold: float | None = Field(default=None, allow_inf_nan=False)
    starts_at: Timestamp
    ends_at: Timestamp | None = None

    def key(self) -> bytes:
        return self.fingerprint.encode()


# Added within v1 (issue 5, alerting): every webhook delivery attempt, so Grafana can
# show the timeline and `llmloop alerts dlq` what was given up on. A new wire type,
# so consumers of "alert" see nothing new.
class NotificationAttempted(Event):
    """One attempt to deliver an alert notification to a receiver, and how it ended.

    ``outcome``: ``delivered`` (2xx), ``retrying`` (timeout, connection error,
    429, 5xx; another attempt follows) or ``dead_lettered`` (the last attempt
    failed, or a 4xx that is never retried; replayable from the dead letters).
    """

    type: Literal["notification"] = "notification"
    notification_id: Name = Field(description="Same on every attempt; the idempotency key.")
    rule: Name
    fingerprint: Name
    status: Literal["firing", "resolved"]
    receiver: Name
    receiver_type: Literal["webhook", "slack", "pagerduty"]
    attempt: Annotated[int, Field(ge=1, le=1_000)]
    outcome: Literal["delivered", "retrying", "dead_lettered"]
    http_status: Annotated[int, Field(ge=100, le=599)] | None = None
    error: Annotated[str, StringConstraints(max_length=2048)] | None = None
    duration_ms: NonNegativeFloat | None = None
    next_attempt_at: Timestamp | None = None

    def key(self) -> bytes:
        return self.fingerprint.encode()


class GateResult(BaseModel):
    """The evaluation gate's verdict on a trained model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    passed: bool
    reasons: list[str] = Field(default_factory=list)


class RetrainJobUpdated(Event):
    """A step in a fine-tune job's life, or a model version registered from it."""

    type: Literal["retrain"] = "retrain"
    job_id: Name
    # "model_promoted" added within v1 (issue 6, retraining): `llmloop models promote`
    # announces that a registered version is the one to serve; the processor marks
    # it promoted in model_versions. Additive: consumers of the other stages see nothing new.
    stage: Literal[
        "requested",
        "started",
        "progress",
        "succeeded",
        "failed",
        "model_registered",
        "model_promoted",
    ]
    model: Name = Field(description="The base model the job fine-tunes.")
    dataset_version: OptionalName = None
    model_version: OptionalName = None
    progress: float | None = Field(default=None, ge=0, le=1)
    metrics: dict[Name, float] = Field(default_factory=dict)
    gate: GateResult | None = None
    message: Annotated[str, StringConstraints(max_length=4096)] | None = None
    # Lineage, added within v1 (issue 6, retraining): what the job started from (a
    # checkpoint path or hub id when it differs from `model`), which launcher ran it,
    # and where the trained weights are, so a model version names all of its origins.
    base_model: OptionalName = None
    launcher: Literal["local", "kubernetes"] | None = None
    artifact_uri: Annotated[str, StringConstraints(max_length=2048)] | None = None

    def key(self) -> bytes:
        return self.job_id.encode()


class BaselinePinned(Event):
    """An operator pinned a window of a model's completions as its drift reference
    (``llmloop baseline set``). Added within v1 (issue 14): the operator's write goes
    through the bus like a promotion, and the processor, the one writer, stores it in
    ``drift_baselines``; the latest pin of a (project, model, prompt version) wins."""

    type: Literal["baseline"] = "baseline"
    model: Name
    prompt_version: Annotated[str, StringConstraints(max_length=MAX_NAME_CHARS)] = Field(
        default="", description="'' pins the window for every prompt version of the model."
    )
    window_start: Timestamp
    window_end: Timestamp
    note: Annotated[str, StringConstraints(max_length=2048)] = ""

    @model_validator(mode="after")
    def _window(self) -> BaselinePinned:
        if self.window_end <= self.window_start:
            raise ValueError("window_end must be after window_start")
        return self

    def key(self) -> bytes:
        return self.model.encode()


AnyEvent: TypeAlias = Annotated[
    CompletionLogged
    | CompletionContentLogged
    | Feedback
    | MetricComputed
    | AlertStateChanged
    | NotificationAttempted
    | RetrainJobUpdated
    | BaselinePinned,
    Field(discriminator="type"),
]
# What apps may send to ingest; the other types are produced inside llmloop.
IngestEvent: TypeAlias = Annotated[
    CompletionLogged | CompletionContentLogged | Feedback, Field(discriminator="type")
]

# Wire type -> model, for JSON Schema export. Feedback is one schema (its kinds).
EVENT_MODELS: dict[str, Any] = {
    "completion": CompletionLogged,
    "completion_content": CompletionContentLogged,
    "feedback": Feedback,
    "metric": MetricComputed,
    "alert": AlertStateChanged,
    "notification": NotificationAttempted,
    "retrain": RetrainJobUpdated,
    "baseline": BaselinePinned,
}

event_adapter: TypeAdapter[AnyEvent] = TypeAdapter(AnyEvent)
ingest_adapter: TypeAdapter[IngestEvent] = TypeAdapter(IngestEvent)


_FEEDBACK_KINDS = {"thumbs", "score", "comment", "correction", "preference"}


def error_field(error: Mapping[str, Any]) -> str:
    """The field a pydantic error is about, as the user wrote it (``attributes.locale``).

    Drops the union tags pydantic adds to locations (``completion``,
    ``feedback``, ``thumbs`` ...), and names the discriminator when the tag
    itself is wrong or missing.
    """
    loc = list(error.get("loc", ()))
    if loc and loc[0] in EVENT_MODELS:
        tag = loc.pop(0)
        if tag == "feedback" and loc and loc[0] in _FEEDBACK_KINDS:
            loc.pop(0)
    if error.get("type") in {"union_tag_invalid", "union_tag_not_found"}:
        loc.append(str(error.get("ctx", {}).get("discriminator", "type")).strip("'"))
    return ".".join(str(p) for p in loc) or "(event)"


AnyEventT = TypeVar("AnyEventT", bound=Event)

# The header ingest puts on a record whose event came without a `timestamp`: ingest
# stamped "now", so a client's retry of it carries a later time than the copy already
# stored, and the writers look further back for that copy (llmloop_processor.writer).
STAMPED_AT_INGEST = ("llmloop-timestamp", b"ingest")


def stamped_at_ingest(event: Event) -> bool:
    """Whether the event's timestamp is the moment it was received, not one its sender
    set: true for an event validated without one (ingest, or one made in this process),
    and for one parsed from a record that carries ``STAMPED_AT_INGEST``."""
    return "timestamp" not in event.model_fields_set


def mark_stamped_at_ingest(event: AnyEventT) -> AnyEventT:
    """The event parsed from a record with ``STAMPED_AT_INGEST``, marked as such: its
    bytes carry a timestamp, but not one the sender set."""
    event.__pydantic_fields_set__.discard("timestamp")
    return event


def parse_event(data: bytes | str) -> AnyEvent:
    """Parse one event from its JSON wire form; raises ``pydantic.ValidationError``."""
    return event_adapter.validate_json(data)


def encode_event(event: Event) -> bytes:
    """The JSON wire form of an event."""
    return event.__pydantic_serializer__.to_json(event)
