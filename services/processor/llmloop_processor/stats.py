"""Windowed statistics on a timer: drift, bias and feedback metrics, published as events.

Every ``interval`` the runner takes the window that just closed (aligned to the
interval, so a restart recomputes the same window) for each (project, model,
prompt_version) and publishes ``MetricComputed`` events to ``llmloop.metrics.v1``;
the processor's sink writes them to the ``metrics`` table like any other event.
Each metric's ``event_id`` is derived from its name, labels and window, so a
window computed twice is stored once.

Metric names and labels (stable: alert rules and dashboards use them). Every
metric carries labels ``project``, ``model``, ``prompt_version``.

=============================  ========================================================
name                           extra labels / meaning
=============================  ========================================================
drift_embedding_mmd            field=prompt|completion, reference=pinned|first_n;
                               value MMD^2 (RBF, median heuristic), p_value permutation
drift_embedding_centroid_cos   field; 1 - cosine(centroid_ref, centroid_cur)
drift_embedding_domain_auc     field; ROC AUC of a classifier telling the windows apart
drift_feature_psi              feature=<scalar>; population stability index
drift_feature_ks               feature; KS statistic, p_value
bias_gap                       attribute=<attr>|demographic:<family>, outcome=negative_feedback|
                               toxicity|refusal|sentiment|length; max - min over
                               segments, p_value chi-square (rates) / Kruskal (means)
bias_ratio                     same labels; min / max (four-fifths rule: < 0.8)
bias_segment_value             same labels + segment=<group>; the group's rate or mean
feedback_thumbs_up_rate        share of thumbs up
feedback_mean_score            mean score rescaled to [0, 1]
feedback_correction_rate       corrections per completion
negative_feedback_rate         share of thumbs down
toxicity_rate                  share of enriched completions flagged toxic
refusal_rate                   share of enriched completions that refuse
latency_p95_ms                 95th percentile latency of every completion in the window
cost_usd_per_hour              spend in the window, scaled to an hour
=============================  ========================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import numpy as np

from llmloop import topics
from llmloop.bus import EventBus, Record
from llmloop.events import MetricComputed, encode_event
from llmloop.store import Store
from llmloop_processor import bias, drift, windows
from llmloop_processor.feedback import correction_rate, mean_score, thumbs_up_rate
from llmloop_processor.profiles import write_profile
from llmloop_processor.settings import ProcessorSettings

log = logging.getLogger(__name__)

NAMESPACE = uuid.UUID("5b0c7f4e-8a51-4b7e-9a6e-4c1f0d2a9e11")
DRIFT_FEATURES = (
    "prompt_chars",
    "completion_chars",
    "completion_tokens",
    "latency_ms",
    "completion_sentiment",
    "completion_toxicity",
)
MIN_EMBEDDED = 20


class MetricSink:
    """Collects the metrics of one window with ids that are stable across re-runs."""

    def __init__(self, base: dict[str, str], start: datetime, end: datetime) -> None:
        self.base, self.start, self.end = base, start, end
        self.metrics: list[MetricComputed] = []

    def add(self, name: str, value: float, n: int, p: float | None = None, **labels: str) -> None:
        if value is None or not np.isfinite(value):
            return
        all_labels = {**self.base, **labels}
        identity = (
            f"{name}|{sorted(all_labels.items())}|{self.start.isoformat()}|{self.end.isoformat()}"
        )
        self.metrics.append(
            MetricComputed(
                event_id=uuid.uuid5(NAMESPACE, identity),
                project_id=self.base["project"] or None,
                name=name,
                value=float(value),
                labels=all_labels,
                window_start=self.start,
                window_end=self.end,
                sample_size=int(n),
                p_value=None if p is None or not np.isfinite(p) else min(max(float(p), 0.0), 1.0),
            )
        )


def window_bounds(now: float, interval_s: float, window_s: float) -> tuple[datetime, datetime]:
    """The window that closed last: its end aligned to the interval."""
    end = datetime.fromtimestamp(now // interval_s * interval_s, UTC)
    return end - timedelta(seconds=window_s), end


def drift_metrics(
    out: MetricSink,
    ref: windows.Window,
    cur: windows.Window,
    *,
    reference: str,
    permutations: int,
    seed: int,
) -> None:
    for field, a, b in (
        ("prompt", ref.prompt_embeddings, cur.prompt_embeddings),
        ("completion", ref.completion_embeddings, cur.completion_embeddings),
    ):
        if len(a) < MIN_EMBEDDED or len(b) < MIN_EMBEDDED:
            continue
        n = len(a) + len(b)
        mmd = drift.mmd_test(a, b, permutations=permutations, seed=seed)
        out.add("drift_embedding_mmd", mmd.mmd2, n, mmd.p_value, field=field, reference=reference)
        out.add(
            "drift_embedding_centroid_cos",
            drift.centroid_cosine_distance(a, b),
            n,
            field=field,
            reference=reference,
        )
        out.add(
            "drift_embedding_domain_auc",
            drift.classifier_auc(a, b, seed=seed),
            n,
            field=field,
            reference=reference,
        )
    for feature in DRIFT_FEATURES:
        a, b = ref.scalars[feature], cur.scalars[feature]
        n = int(np.sum(~np.isnan(a)) + np.sum(~np.isnan(b)))
        if np.sum(~np.isnan(a)) < 2 or np.sum(~np.isnan(b)) < 2:
            continue
        out.add("drift_feature_psi", drift.psi(a, b), n, feature=feature, reference=reference)
        stat, p = drift.ks(a, b)
        out.add("drift_feature_ks", stat, n, p, feature=feature, reference=reference)


def _groupings(cur: windows.Window) -> Iterator[tuple[str, list[str | None]]]:
    """(label, group per completion or None) per segment attribute and per term family."""
    names = sorted({k for attrs in cur.attributes for k in attrs})
    for name in names:
        yield name, [attrs.get(name) for attrs in cur.attributes]
    families = sorted({g.split(":")[0] for groups in cur.demographics for g in groups})
    for family in families:
        per_row: list[str | None] = []
        for groups in cur.demographics:
            mine = [g.split(":", 1)[1] for g in groups if g.startswith(family + ":")]
            # A prompt that mentions two groups of a family is left out of that family.
            per_row.append(mine[0] if len(mine) == 1 else None)
        yield f"demographic:{family}", per_row


def bias_metrics(out: MetricSink, cur: windows.Window, min_group: int) -> None:
    outcomes = {
        "negative_feedback": (cur.negative_feedback, bias.compare_rates),
        "toxicity": (cur.toxic, bias.compare_rates),
        "refusal": (cur.refusal, bias.compare_rates),
        "sentiment": (cur.scalars["completion_sentiment"], bias.compare_means),
        "length": (cur.scalars["completion_chars"], bias.compare_means),
    }
    for attribute, groups in _groupings(cur):
        rows = np.array([g is not None for g in groups])
        if rows.sum() < 2 * min_group:
            continue
        labels = [g for g in groups if g is not None]
        for outcome, (values, compare) in outcomes.items():
            result = compare(labels, np.asarray(values)[rows], min_group=min_group)
            if result is None:
                continue
            n = result.sample_size
            out.add("bias_gap", result.gap, n, result.p_value, attribute=attribute, outcome=outcome)
            out.add("bias_ratio", result.ratio, n, attribute=attribute, outcome=outcome)
            for segment, value in result.values.items():
                out.add(
                    "bias_segment_value",
                    value,
                    result.sizes[segment],
                    attribute=attribute,
                    outcome=outcome,
                    segment=segment,
                )


def feedback_metrics(store: Store, start: datetime, end: datetime) -> list[MetricComputed]:
    """Thumbs-up rate, mean score and correction rate per (project, model, prompt_version)."""
    dt = windows.DT
    rows = store.query(
        "SELECT c.project_id, c.model, c.prompt_version, f.kind, f.value, f.scale_min, f.scale_max "
        "FROM feedback AS f INNER JOIN completions AS c "
        "ON c.event_id = f.completion_id AND c.project_id = f.project_id "
        f"WHERE f.ts >= {{start:{dt}}} AND f.ts < {{end:{dt}}}",
        {"start": start, "end": end},
    ).rows
    counts = store.query(
        "SELECT project_id, model, prompt_version, uniqExact(event_id) FROM completions "
        f"WHERE ts >= {{start:{dt}}} AND ts < {{end:{dt}}} "
        "GROUP BY project_id, model, prompt_version",
        {"start": start, "end": end},
    ).rows
    by_key: dict[tuple[str, str, str], list[tuple]] = {}
    for row in rows:
        by_key.setdefault(tuple(row[:3]), []).append(row[3:])  # type: ignore[arg-type]
    completions = {tuple(r[:3]): int(r[3]) for r in counts}
    out: list[MetricComputed] = []
    for key in sorted(set(by_key) | set(completions)):
        project, model, version = key
        sink = MetricSink(
            {"project": project, "model": model, "prompt_version": version}, start, end
        )
        items = by_key.get(key, [])
        thumbs = [v for kind, v, _, _ in items if kind == "thumbs"]
        scores = [(v, lo, hi) for kind, v, lo, hi in items if kind == "score"]
        corrections = sum(1 for kind, *_ in items if kind == "correction")
        if (s := thumbs_up_rate(thumbs)) is not None:
            sink.add("feedback_thumbs_up_rate", s.value, s.sample_size)
            sink.add("negative_feedback_rate", 1.0 - s.value, s.sample_size)
        if scores and (s := mean_score(*zip(*scores, strict=True))) is not None:
            sink.add("feedback_mean_score", s.value, s.sample_size)
        if (s := correction_rate(corrections, completions.get(key, 0))) is not None and items:
            sink.add("feedback_correction_rate", s.value, s.sample_size)
        out.extend(sink.metrics)
    return out


def traffic_metrics(store: Store, start: datetime, end: datetime) -> list[MetricComputed]:
    """What on-call watches per (project, model, prompt_version): latency p95, spend,
    toxicity and refusal rates, over every completion of the window (not a sample)."""
    dt = windows.DT
    span = {"start": start, "end": end}
    traffic = store.query(
        "SELECT project_id, model, prompt_version, quantileExact(0.95)(latency_ms), "
        "countIf(latency_ms IS NOT NULL) "
        f"FROM completions WHERE ts >= {{start:{dt}}} AND ts < {{end:{dt}}} "
        "GROUP BY project_id, model, prompt_version",
        span,
    ).rows
    enriched = store.query(
        # Cost from enrichment: the event's own, else the price table's.
        "SELECT project_id, model, prompt_version, uniqExact(event_id), "
        "uniqExactIf(event_id, toxic), uniqExactIf(event_id, refusal), "
        "sum(cost_usd), countIf(cost_usd IS NOT NULL) "
        f"FROM completion_enrichments WHERE ts >= {{start:{dt}}} AND ts < {{end:{dt}}} "
        "GROUP BY project_id, model, prompt_version",
        span,
    ).rows
    per_hour = 3600.0 / max((end - start).total_seconds(), 1.0)
    sinks: dict[tuple[str, str, str], MetricSink] = {}

    def sink(project: str, model: str, version: str) -> MetricSink:
        labels = {"project": project, "model": model, "prompt_version": version}
        return sinks.setdefault((project, model, version), MetricSink(labels, start, end))

    for project, model, version, p95, timed in traffic:
        if timed:
            sink(project, model, version).add("latency_p95_ms", p95, timed)
    for project, model, version, n, toxic, refused, cost, priced in enriched:
        if n:
            sink(project, model, version).add("toxicity_rate", toxic / n, n)
            sink(project, model, version).add("refusal_rate", refused / n, n)
        if priced:
            sink(project, model, version).add("cost_usd_per_hour", cost * per_hour, priced)
    return [m for s in sinks.values() for m in s.metrics]


class StatsRunner:
    """Computes every window's metrics and publishes them; runs on a timer."""

    def __init__(
        self,
        store: Store,
        bus: EventBus,
        settings: ProcessorSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store, self.bus, self.settings, self.clock = store, bus, settings, clock
        self.last_end: datetime | None = None

    def compute(self, start: datetime, end: datetime) -> list[MetricComputed]:
        s = self.settings
        metrics: list[MetricComputed] = []
        for key in windows.keys(self.store, start, end, s.processor_min_samples):
            cur = windows.current(self.store, key, start, end, s.processor_sample_cap)
            ref, source = windows.reference(
                self.store, key, s.processor_reference_size, s.processor_sample_cap
            )
            drift_cur = cur
            if source == "first_n" and ref.ts_max is not None and ref.ts_max >= start:
                # The window still overlaps the first N events: compare only what came
                # after them, or drift would be measured between copies of one sample.
                after = ref.ts_max + timedelta(milliseconds=1)
                drift_cur = windows.current(self.store, key, after, end, s.processor_sample_cap)
            project, model, version = key
            out = MetricSink(
                {"project": project, "model": model, "prompt_version": version}, start, end
            )
            if ref.size >= s.processor_min_samples and drift_cur.size >= s.processor_min_samples:
                seed = int(end.timestamp()) % 2**31  # reproducible per window
                drift_metrics(
                    out,
                    ref,
                    drift_cur,
                    reference=source,
                    permutations=s.processor_permutations,
                    seed=seed,
                )
            bias_metrics(out, cur, bias.MIN_GROUP)
            metrics.extend(out.metrics)
            if s.processor_profiles:
                write_profile(self.store, key, start, end, cur)
        metrics.extend(feedback_metrics(self.store, start, end))
        metrics.extend(traffic_metrics(self.store, start, end))
        return metrics

    async def tick(self) -> int:
        """Compute the window that closed last (once) and publish its metrics."""
        s = self.settings
        start, end = window_bounds(
            self.clock(), s.processor_stats_interval_s, s.processor_stats_window_s
        )
        if end == self.last_end:
            return 0
        began = time.monotonic()
        metrics = await asyncio.to_thread(self.compute, start, end)
        if metrics:
            await self.bus.publish(
                topics.METRICS, [Record(key=m.key(), value=encode_event(m)) for m in metrics]
            )
        self.last_end = end
        log.info(
            "window %s..%s: %d metrics in %.2f s",
            start.isoformat(),
            end.isoformat(),
            len(metrics),
            time.monotonic() - began,
        )
        return len(metrics)

    async def run(self, stop: asyncio.Event) -> None:
        interval = self.settings.processor_stats_interval_s
        while not stop.is_set():
            try:
                await self.tick()
            except Exception:  # the next tick retries; a bad window must not stop the stream
                log.exception("statistics for the last window failed; retrying next interval")
            wait = interval - self.clock() % interval + 0.05
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
