"""``gen_ai.evaluation.result`` (a span event or a log record) as judge feedback.

The conventions parent an evaluation to the span of the call it judges, so the
feedback's ``completion_id`` is that span's completion id. A score becomes
``score`` feedback; a label alone becomes ``comment`` feedback; the
explanation is the comment. The conventions carry no scale: a score within
[0, 1] keeps that scale, any other gets the smallest whole-number scale around
0..1 that holds it, so the event stays valid and the value stays as sent.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from llmloop_ingest import semconv
from llmloop_ingest.messages import as_text
from llmloop_ingest.otlp import NAMESPACE, attributes, completion_id


def evaluation(
    attrs: dict[str, Any], trace_id: str, span_id: str, time_unix_nano: int
) -> dict[str, Any] | None:
    """The feedback event dict of one evaluation result, or None when it names no call.

    Without a span id, the response id names the call: the feedback gets a
    placeholder completion id and the processor's writer points it at the stored
    completion of that response.
    """
    names = semconv.EVALUATION
    response_id = attrs.get(names["response_id"])
    if not span_id and not response_id:
        return None
    name, label = attrs.get(names["name"]), attrs.get(names["label"])
    explanation = attrs.get(names["explanation"])
    score = attrs.get(names["score"])
    event_id = uuid.uuid5(NAMESPACE, f"evaluation/{trace_id}/{span_id}/{name}/{time_unix_nano}")
    event: dict[str, Any] = {
        "type": "feedback",
        "event_id": str(event_id),
        "completion_id": str(
            completion_id(trace_id, span_id)
            if span_id
            else uuid.uuid5(NAMESPACE, f"response/{response_id}")
        ),
        "source": "judge",
        "metadata": {"otel.trace_id": trace_id, "otel.span_id": span_id},
    }
    if response_id:
        event["metadata"]["gen_ai.response.id"] = as_text(response_id)[:256]
    if name:
        event["evaluation"] = as_text(name)[:256]
    if label not in (None, ""):
        event["label"] = as_text(label)[:256]
    if explanation not in (None, ""):
        event["comment"] = as_text(explanation)
    if isinstance(score, int | float) and not isinstance(score, bool) and math.isfinite(score):
        event.update(kind="score", value=float(score))
        if not 0 <= score <= 1:
            event.update(scale_min=min(0, math.floor(score)), scale_max=max(1, math.ceil(score)))
        return event
    if label in (None, "") and explanation in (None, ""):
        return None
    event["kind"] = "comment"
    event.setdefault("comment", as_text(label))
    return event


def span_evaluations(span: Span) -> list[dict[str, Any]]:
    """Evaluation results recorded as events of the span they judge."""
    out = []
    for e in span.events:
        if e.name == semconv.EVALUATION_EVENT:
            attrs = attributes(e.attributes)
            found = evaluation(attrs, span.trace_id.hex(), span.span_id.hex(), e.time_unix_nano)
            if found is not None:
                out.append(found)
    return out
