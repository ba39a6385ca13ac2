"""Windowed statistics on a timer: drift, bias and feedback metrics, published as events.

Every ``interval`` the runner takes the window that just closed (aligned to the
interval, so a restart recomputes the same window) for each (project, model,
prompt_version) and publishes ``MetricComputed`` events to ``llmloop.metrics.v1``;
the processor's sink writes them to the ``metrics`` table like any other event.
What each metric is, its labels and unit: the metric catalogue
(``llmloop.contracts.metrics``), which ``MetricSink`` enforces.

What a test may rest on, per key and window:

* drift compares the reference with the window after collapsing duplicates and
  sessions (``exchangeable``), so a permutation p-value means what it says;
* feedback outcomes (negative-feedback bias, feedback rates) describe the window
  that ended ``processor_feedback_settle_s`` ago: late feedback is counted;
* a window is computed once its enrichment and embedding sample caught up
  (``progress.caught_up``), not on a partial backlog;
* every p-value is Holm-adjusted over its family in the window (``metric_sink``);
  overlapping windows are the alert rules' business (they evaluate windows that
  do not overlap, see ``llmloop_alerting.state``).

Replicas split the keys (``shard``): each computes the keys of the events-topic
partitions its consumer group gave it, up to ``processor_stats_workers`` keys at once.
The log line of a tick names how many keys it computed and of which shard, so a test
or an operator can count that every key's window was computed once.

A window is computed once per key, across restarts and partition moves: a replica
leaves out the keys whose window's metrics are already stored (``stored_windows``).
A replica started, or handed a partition, after a window closed would otherwise compute
that window again on the rows stored since (events redelivered after a kill), and
publish different numbers under the same metric ids; a window its previous owner never
computed (it died first) is still computed, by the new owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from llmloop import topics
from llmloop.bus import EventBus, Record
from llmloop.contracts.metrics import FEEDBACK_OUTCOMES, MEAN_OUTCOMES, OUTCOMES
from llmloop.events import MetricComputed, encode_event
from llmloop.store import Store
from llmloop_processor import bias, drift, exchangeable, progress, shard, windows
from llmloop_processor.aggregates import (
    FEEDBACK_METRICS,
    TRAFFIC_METRICS,
    feedback_metrics,
    traffic_metrics,
)
from llmloop_processor.canary import CANARY_METRIC, canary_metrics
from llmloop_processor.metric_sink import MetricSink
from llmloop_processor.profiles import write_profile
from llmloop_processor.settings import ProcessorSettings

__all__ = ["StatsRunner", "Tests", "window_bounds", "window_metrics"]

log = logging.getLogger(__name__)

DRIFT_FEATURES = (
    "prompt_chars",
    "completion_chars",
    "completion_tokens",
    "latency_ms",
    "completion_sentiment",
    "completion_toxicity",
)
MIN_EMBEDDED = 20
RECHECK_S = 2.0  # how soon a window that waited for enrichment is looked at again
FIELDS = ("prompt", "completion")


@dataclass(frozen=True)
class Tests:
    """How the tests of a window run (from ``ProcessorSettings``)."""

    __test__ = False  # a dataclass named Tests, not a pytest class

    permutations: int = 200
    max_permutations: int = 2_000
    near_duplicate: float = exchangeable.NEAR
    min_group: int = bias.MIN_GROUP
    collapse: bool = True  # False only to show what duplicates do to a test (the bench)

    @classmethod
    def from_settings(cls, s: ProcessorSettings) -> Tests:
        return cls(
            s.processor_permutations,
            max(s.processor_max_permutations, s.processor_permutations),
            s.processor_near_duplicate,
        )


def window_bounds(now: float, interval_s: float, window_s: float) -> tuple[datetime, datetime]:
    """The window that closed last: its end aligned to the interval."""
    end = datetime.fromtimestamp(now // interval_s * interval_s, UTC)
    return end - timedelta(seconds=window_s), end


def _test_rows(w: windows.Window, field: str, tests: Tests) -> np.ndarray:
    vectors = w.embeddings(field)
    if not tests.collapse:
        return np.arange(len(vectors))
    return exchangeable.collapse(
        vectors, w.text_hashes(field), w.embedded_groups(), tests.near_duplicate
    )


def drift_metrics(
    out: MetricSink,
    ref: windows.Window,
    cur: windows.Window,
    *,
    reference: str,
    tests: Tests,
    seed: int,
) -> None:
    for field in FIELDS:
        a_all, b_all = ref.embeddings(field), cur.embeddings(field)
        a = a_all[_test_rows(ref, field, tests)]
        b = b_all[_test_rows(cur, field, tests)]
        if len(a) < MIN_EMBEDDED or len(b) < MIN_EMBEDDED:
            continue
        sizes = {"reference_size": len(a), "rows_total": len(b_all)}
        labels = {"field": field, "reference": reference}
        mmd = drift.mmd_test(
            a,
            b,
            permutations=tests.permutations,
            max_permutations=tests.max_permutations,
            seed=seed,
        )
        out.add("drift_embedding_score", mmd.score, len(b), mmd.p_value, **sizes, **labels)
        out.add("drift_embedding_mmd", mmd.mmd2, len(b), mmd.p_value, **sizes, **labels)
        auc, auc_p = drift.classifier_auc(a, b, seed=seed)
        out.add("drift_embedding_domain_auc", auc, len(b), auc_p, **sizes, **labels)
        out.add(
            "drift_embedding_centroid_cos",
            drift.centroid_cosine_distance(a, b),
            len(b),
            **sizes,
            **labels,
        )
    # Scalars: one row per session and per prompt text, like the embeddings.
    ref_rows = _scalar_rows(ref) if tests.collapse else np.arange(ref.size)
    cur_rows = _scalar_rows(cur) if tests.collapse else np.arange(cur.size)
    for feature in DRIFT_FEATURES:
        a, b = ref.scalars[feature][ref_rows], cur.scalars[feature][cur_rows]
        a, b = a[~np.isnan(a)], b[~np.isnan(b)]
        if len(a) < 2 or len(b) < 2:
            continue
        sizes = {"reference_size": len(a), "rows_total": cur.size}
        labels = {"feature": feature, "reference": reference}
        out.add("drift_feature_psi", drift.psi(a, b), len(b), **sizes, **labels)
        stat, p = drift.ks(a, b)
        out.add("drift_feature_ks", stat, len(b), p, **sizes, **labels)


def _scalar_rows(w: windows.Window) -> np.ndarray:
    return exchangeable.distinct_rows(w.prompt_hash, w.group)


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


def _outcome_values(cur: windows.Window, outcome: str) -> np.ndarray:
    return {
        "negative_feedback": cur.negative_feedback,
        "toxicity": cur.toxic,
        "refusal": cur.refusal,
        "sentiment": cur.scalars["completion_sentiment"],
        "length": cur.scalars["completion_chars"],
    }[outcome]


def bias_metrics(
    out: MetricSink, cur: windows.Window, min_group: int, outcomes: tuple[str, ...] = OUTCOMES
) -> None:
    for attribute, groups in _groupings(cur):
        rows = np.array([g is not None for g in groups])
        if rows.sum() < 2 * min_group:
            continue
        labels = [g for g in groups if g is not None]
        for outcome in outcomes:
            values = np.asarray(_outcome_values(cur, outcome))[rows]
            if outcome in MEAN_OUTCOMES:
                result = bias.compare_means(
                    labels, values, min_group=min_group, relative=outcome == "length"
                )
            else:
                result = bias.compare_rates(labels, values, min_group=min_group)
            if result is None:
                continue
            tags = {"attribute": attribute, "outcome": outcome}
            # Gated on the smallest group compared, never on a pooled total.
            out.add("bias_gap", result.gap, result.smallest, result.p_value, **tags)
            if result.ratio is not None:
                out.add("bias_ratio", result.ratio, result.smallest, **tags)
            for seg in result.segments:
                n = min(seg.size, seg.rest_size)
                out.add("bias_segment_gap", seg.effect, n, seg.p_value, segment=seg.segment, **tags)
                out.add("bias_segment_value", seg.value, seg.size, segment=seg.segment, **tags)


def window_metrics(
    key: tuple[str, str, str],
    start: datetime,
    end: datetime,
    *,
    cur: windows.Window,
    ref: windows.Window | None,
    reference: str,
    tests: Tests,
    outcomes: tuple[str, ...] = OUTCOMES,
    drift_cur: windows.Window | None = None,
) -> list[MetricComputed]:
    """Drift (when a reference is given) and bias of one key's window, p-values adjusted.

    ``drift_cur``: the rows drift compares with the reference, when not all of ``cur``
    (those after the first N events, while the window still holds them).

    The same function serves the timer and ``bench/soundness.py``, so the bench
    measures what ships.
    """
    project, model, version = key
    out = MetricSink({"project": project, "model": model, "prompt_version": version}, start, end)
    if ref is not None:
        seed = int(end.timestamp()) % 2**31  # reproducible per window
        drift_metrics(out, ref, drift_cur or cur, reference=reference, tests=tests, seed=seed)
    if outcomes:
        bias_metrics(out, cur, tests.min_group, outcomes)
    return out.metrics


def _labels_key(m: MetricComputed) -> tuple[str, str, str]:
    labels = m.labels
    return (labels.get("project", ""), labels.get("model", ""), labels.get("prompt_version", ""))


Key = shard.Key
# Metrics each part of a tick publishes for every key it computes: their presence in the
# store says that part of the key's window was computed (and published) already.
NOW_MARKERS = TRAFFIC_METRICS
SETTLED_MARKERS = (*FEEDBACK_METRICS, CANARY_METRIC)


def stored_windows(
    store: Store, now: tuple[datetime, datetime], settled: tuple[datetime, datetime]
) -> tuple[set[Key], set[Key]]:
    """The keys whose window ``now`` and whose settled window ``settled`` (its feedback
    outcomes) are stored in ``metrics`` already."""
    rows = store.query(
        "SELECT DISTINCT project_id, labels['model'], labels['prompt_version'], "
        "name IN {settled_names:Array(String)} FROM metrics "
        "WHERE (name IN {now_names:Array(String)} "
        f"AND window_start = {{start:{windows.DT}}} AND window_end = {{end:{windows.DT}}}) "
        "OR (name IN {settled_names:Array(String)} "
        f"AND window_start = {{s_start:{windows.DT}}} AND window_end = {{s_end:{windows.DT}}})",
        {
            "now_names": list(NOW_MARKERS),
            "settled_names": list(SETTLED_MARKERS),
            "start": now[0],
            "end": now[1],
            "s_start": settled[0],
            "s_end": settled[1],
        },
    ).rows
    done_now = {(p, m, v) for p, m, v, is_settled in rows if not is_settled}
    done_settled = {(p, m, v) for p, m, v, is_settled in rows if is_settled}
    return done_now, done_settled


class StatsRunner:
    """Computes every window's metrics and publishes them; runs on a timer."""

    def __init__(
        self,
        store: Store,
        bus: EventBus,
        settings: ProcessorSettings,
        clock: Callable[[], float] = time.time,
        ownership: shard.Ownership = shard.everything,
    ) -> None:
        self.store, self.bus, self.settings, self.clock = store, bus, settings, clock
        self.ownership = ownership
        self.last_end: datetime | None = None
        self.deferred = False  # the last tick waited for enrichment to catch up
        self.last_keys = 0  # keys the last compute() computed (this replica's share)
        self.last_stored = 0  # keys of its share it left out: their window was stored

    def compute(self, start: datetime, end: datetime) -> list[MetricComputed]:
        """This replica's keys' metrics for the window, in key order (deterministic)."""
        s = self.settings
        mine = self.ownership()
        tests = Tests.from_settings(s)
        settle = timedelta(seconds=s.processor_feedback_settle_s)
        # Outcomes of the window itself; feedback ones are computed on the settled window.
        now_outcomes = tuple(o for o in OUTCOMES if not settle or o not in FEEDBACK_OUTCOMES)
        done_now, done_settled = stored_windows(
            self.store, (start, end), (start - settle, end - settle)
        )
        if not settle:  # one part: either marker says the window was computed
            done_now = done_settled = done_now | done_settled

        def mine_to_do(key: Key, done: set[Key]) -> bool:
            return shard.owns(mine, key) and key not in done

        keys = [
            k
            for k in windows.keys(self.store, start, end, s.processor_min_samples)
            if mine_to_do(k, done_now)
        ]
        settled_keys: list[Key] = []
        if settle:
            s_start, s_end = start - settle, end - settle
            settled_keys = [
                k
                for k in windows.keys(self.store, s_start, s_end, s.processor_min_samples)
                if mine_to_do(k, done_settled)
            ]
        jobs: list[Callable[[], list[MetricComputed]]] = [
            lambda k=k: self._key_metrics(k, start, end, tests, now_outcomes) for k in keys
        ] + [
            lambda k=k: self._settled_metrics(k, start - settle, end - settle, tests)
            for k in settled_keys
        ]
        metrics: list[MetricComputed] = []
        if s.processor_stats_workers > 1 and len(jobs) > 1:
            with ThreadPoolExecutor(s.processor_stats_workers, "llmloop-stats") as pool:
                for part in pool.map(lambda job: job(), jobs):  # results in key order
                    metrics += part
        else:
            for job in jobs:
                metrics += job()
        settled = feedback_metrics(self.store, start - settle, end - settle)
        if s.processor_canary_lookback_s:
            settled += canary_metrics(
                lambda sql, params: self.store.query(sql, params).rows,
                start - settle,
                end - settle,
                lookback_s=s.processor_canary_lookback_s,
                min_samples=s.processor_canary_min_samples,
            )
        # One query for all keys (cheap); each replica publishes its own keys' rows.
        metrics += [m for m in settled if mine_to_do(_labels_key(m), done_settled)]
        traffic = traffic_metrics(self.store, start, end)
        metrics += [m for m in traffic if mine_to_do(_labels_key(m), done_now)]
        self.last_keys = len(set(keys) | set(settled_keys))
        self.last_stored = len({k for k in done_now | done_settled if shard.owns(mine, k)})
        return metrics

    def _key_metrics(
        self,
        key: tuple[str, str, str],
        start: datetime,
        end: datetime,
        tests: Tests,
        outcomes: tuple[str, ...],
    ) -> list[MetricComputed]:
        s = self.settings
        cur = windows.current(self.store, key, start, end, s.processor_sample_cap)
        ref, source = self._reference(key, start, end)
        drift_cur = cur
        if source == "first_n" and ref.ts_max is not None and ref.ts_max >= start:
            # The window still overlaps the first N events: compare only what came
            # after them, or drift would be measured between copies of one sample.
            after = ref.ts_max + timedelta(milliseconds=1)
            drift_cur = windows.current(self.store, key, after, end, s.processor_sample_cap)
        enough = ref.size >= s.processor_min_samples and drift_cur.size >= s.processor_min_samples
        metrics = window_metrics(
            key,
            start,
            end,
            cur=cur,
            drift_cur=drift_cur,
            ref=ref if enough else None,
            reference=source,
            tests=tests,
            outcomes=outcomes,
        )
        if s.processor_profiles:
            write_profile(self.store, key, start, end, cur)
        return metrics

    def _settled_metrics(
        self, key: tuple[str, str, str], start: datetime, end: datetime, tests: Tests
    ) -> list[MetricComputed]:
        s = self.settings
        settled = windows.current(self.store, key, start, end, s.processor_sample_cap)
        return window_metrics(
            key,
            start,
            end,
            cur=settled,
            ref=None,
            reference="",
            tests=tests,
            outcomes=FEEDBACK_OUTCOMES,
        )

    def _reference(
        self, key: tuple[str, str, str], start: datetime, end: datetime
    ) -> tuple[windows.Window, str]:
        s = self.settings
        rolling = None
        if s.processor_reference_mode == "rolling":
            back = end - timedelta(seconds=s.processor_reference_offset_s)
            rolling = (back - timedelta(seconds=s.processor_reference_span_s), back)
        return windows.reference(
            self.store,
            key,
            s.processor_reference_size,
            s.processor_sample_cap,
            rolling=rolling,
            min_rows=s.processor_min_samples,
        )

    async def tick(self) -> int:
        """Compute the window that closed last (once) and publish its metrics."""
        s = self.settings
        start, end = window_bounds(
            self.clock(), s.processor_stats_interval_s, s.processor_stats_window_s
        )
        if end == self.last_end:
            return 0
        mine = self.ownership()
        if mine is not None and mine.partitions == 0:
            # No assignment yet (start, rebalance): wait for one rather than skip a window.
            self.deferred = True
            log.info("window %s..%s: no partitions assigned yet, waiting", start, end)
            return 0
        began = time.monotonic()
        ready = await asyncio.to_thread(progress.caught_up, self.store, start, end)
        # Wait for enrichment and embeddings of the window rather than test a partial
        # sample; past most of the next interval, compute it anyway and say so.
        give_up = end.timestamp() + 0.8 * s.processor_stats_interval_s
        self.deferred = not ready and self.clock() < give_up
        if self.deferred:
            log.info("window %s..%s: enrichment not caught up, waiting", start, end)
            return 0
        if not ready:
            log.warning(
                "window %s..%s: enrichment still behind; computed on what was enriched", start, end
            )
        metrics = await asyncio.to_thread(self.compute, start, end)
        if metrics:
            await self.bus.publish(
                topics.METRICS,
                [Record(key=m.key(), value=encode_event(m), event=m) for m in metrics],
            )
        self.last_end = end
        log.info(
            "window %s..%s: %d keys (%s; %d computed before), %d metrics in %.2f s",
            start.isoformat(),
            end.isoformat(),
            self.last_keys,
            mine.label if mine else "all keys",
            self.last_stored,
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
            if self.deferred:
                wait = min(wait, RECHECK_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
