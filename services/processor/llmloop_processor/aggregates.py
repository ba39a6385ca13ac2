"""Metrics that are SQL aggregates over every completion of a window, not over a sample.

Feedback metrics describe the completions *made* in the window, with whatever
feedback they received since (the runner passes a window old enough for it to
have arrived: ``processor_feedback_settle_s``). "Negative" has one definition,
``llmloop.contracts.feedback``, the one the bias statistics use: a thumbs down, a
score in the lower half of its scale, or a correction.
"""

from __future__ import annotations

from datetime import datetime

from llmloop.contracts.feedback import NEGATIVE, NEGATIVE_KINDS
from llmloop.events import MetricComputed
from llmloop.store import Store
from llmloop_processor.metric_sink import MetricSink
from llmloop_processor.windows import DT

Key = tuple[str, str, str]

# What each function below publishes per key (statistics look for them in the store: a
# window already computed, ``llmloop_processor.stats``).
FEEDBACK_METRICS = (
    "feedback_thumbs_up_rate",
    "feedback_mean_score",
    "feedback_correction_rate",
    "negative_feedback_rate",
)
TRAFFIC_METRICS = ("latency_p95_ms", "toxicity_rate", "refusal_rate", "cost_usd_per_hour")


class _PerKey(dict[Key, MetricSink]):
    """One sink per key, made on first use."""

    def __init__(self, start: datetime, end: datetime) -> None:
        super().__init__()
        self.start, self.end = start, end

    def __call__(self, project: str, model: str, version: str) -> MetricSink:
        labels = {"project": project, "model": model, "prompt_version": version}
        return self.setdefault((project, model, version), MetricSink(labels, self.start, self.end))

    def metrics(self) -> list[MetricComputed]:
        return [m for sink in self.values() for m in sink.metrics]


def feedback_metrics(store: Store, start: datetime, end: datetime) -> list[MetricComputed]:
    """Thumbs-up rate, mean score, correction and negative-feedback rates per key."""
    rows = store.query(
        f"""
        SELECT c.project_id, c.model, c.prompt_version, uniqExact(c.event_id),
               countIf(f.kind = 'thumbs'), countIf(f.kind = 'thumbs' AND f.value > 0),
               countIf(f.kind = 'score'),
               sumIf((f.value - f.scale_min) / (f.scale_max - f.scale_min), f.kind = 'score'),
               countIf(f.kind = 'correction')
        FROM (SELECT event_id, project_id, model, prompt_version FROM completions
              WHERE ts >= {{start:{DT}}} AND ts < {{end:{DT}}} LIMIT 1 BY event_id) AS c
        LEFT JOIN feedback AS f ON f.completion_id = c.event_id AND f.project_id = c.project_id
        GROUP BY c.project_id, c.model, c.prompt_version
        SETTINGS join_use_nulls = 1
        """,
        {"start": start, "end": end},
    ).rows
    negative = store.query(
        f"""
        SELECT c.project_id, c.model, c.prompt_version, count(), sum(f.negative)
        FROM (SELECT event_id, project_id, model, prompt_version FROM completions
              WHERE ts >= {{start:{DT}}} AND ts < {{end:{DT}}} LIMIT 1 BY event_id) AS c
        INNER JOIN (
            SELECT project_id, completion_id, {NEGATIVE} AS negative FROM feedback
            WHERE kind IN ({NEGATIVE_KINDS}) GROUP BY project_id, completion_id
        ) AS f ON f.completion_id = c.event_id AND f.project_id = c.project_id
        GROUP BY c.project_id, c.model, c.prompt_version
        """,
        {"start": start, "end": end},
    ).rows
    sink = _PerKey(start, end)
    for project, model, version, completions, thumbs, up, scores, score_sum, fixes in rows:
        out = sink(project, model, version)
        if thumbs:
            out.add("feedback_thumbs_up_rate", up / thumbs, thumbs)
        if scores:
            out.add("feedback_mean_score", score_sum / scores, scores)
        if completions and (thumbs or scores or fixes):
            out.add("feedback_correction_rate", fixes / completions, completions)
    for project, model, version, rated, negatives in negative:
        if rated:
            out = sink(project, model, version)
            out.add("negative_feedback_rate", negatives / rated, rated)
    return sink.metrics()


def traffic_metrics(store: Store, start: datetime, end: datetime) -> list[MetricComputed]:
    """What on-call watches per key: latency p95, spend, toxicity and refusal rates."""
    span = {"start": start, "end": end}
    traffic = store.query(
        "SELECT project_id, model, prompt_version, quantileExact(0.95)(latency_ms), "
        "countIf(latency_ms IS NOT NULL) "
        f"FROM completions WHERE ts >= {{start:{DT}}} AND ts < {{end:{DT}}} "
        "GROUP BY project_id, model, prompt_version",
        span,
    ).rows
    enriched = store.query(
        # Cost from enrichment: the event's own, else the price table's.
        "SELECT project_id, model, prompt_version, uniqExact(event_id), "
        "uniqExactIf(event_id, toxic), uniqExactIf(event_id, refusal), "
        "sum(cost_usd), countIf(cost_usd IS NOT NULL) "
        f"FROM completion_enrichments WHERE ts >= {{start:{DT}}} AND ts < {{end:{DT}}} "
        "GROUP BY project_id, model, prompt_version",
        span,
    ).rows
    per_hour = 3600.0 / max((end - start).total_seconds(), 1.0)
    sink = _PerKey(start, end)
    for project, model, version, p95, timed in traffic:
        if timed:
            sink(project, model, version).add("latency_p95_ms", p95, timed)
    for project, model, version, n, toxic, refused, cost, priced in enriched:
        out = sink(project, model, version)
        if n:
            out.add("toxicity_rate", toxic / n, n)
            out.add("refusal_rate", refused / n, n)
        if priced:
            out.add("cost_usd_per_hour", cost * per_hour, priced)
    return sink.metrics()
