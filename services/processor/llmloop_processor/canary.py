"""Canaries: every other version of a model against its current one, on the stats timer.

Current: the version last promoted (``llmloop models promote``) when it has
traffic in the span, else the version with the most completions; every other
version with traffic is a canary. The comparison is ``compare.compare_arms``
(always valid), cumulative over the lookback, so recomputing it every window is
looking at it every window, which it allows. Published as
``canary_outcome_difference``; the canary alert rules read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from llmloop.events import MetricComputed
from llmloop_processor.compare import OUTCOMES, Arm, Query, Result, compare_arms
from llmloop_processor.metric_sink import MetricSink
from llmloop_processor.windows import DT

CANARY_METRIC = "canary_outcome_difference"


def current_versions(query: Query) -> dict[tuple[str, str], str]:
    """The version last promoted per (project, model), from the model registry."""
    rows = query(
        "SELECT project_id, model, argMax(version, updated_at) FROM model_versions FINAL "
        "WHERE status = 'promoted' GROUP BY project_id, model",
        {},
    )
    return {(str(p), str(m)): str(v) for p, m, v in rows}


def version_sums(
    query: Query, outcome: str, since: datetime, until: datetime
) -> dict[tuple[str, str, str], tuple[int, float, float]]:
    """(n, sum, sum of squares) per (project, model, model_version) with a version set."""
    spec = OUTCOMES[outcome]
    chosen = f"model_version != '' AND ts >= {{since:{DT}}} AND ts < {{until:{DT}}}"
    sql = f"""
        SELECT c.project_id, c.model, c.model_version, count(), sum(o.x), sum(o.x * o.x)
        FROM (SELECT event_id, project_id, model, model_version FROM completions
              WHERE {chosen} LIMIT 1 BY event_id) AS c
        INNER JOIN ({spec.of(f"SELECT event_id FROM completions WHERE {chosen}")}) AS o
            ON o.event_id = c.event_id AND o.project_id = c.project_id
        WHERE isNotNull(o.x) AND isFinite(o.x)
        GROUP BY c.project_id, c.model, c.model_version
    """
    rows = query(sql, {"since": since, "until": until})
    return {(str(p), str(m), str(v)): (int(n), float(s), float(ss)) for p, m, v, n, s, ss in rows}


@dataclass(frozen=True)
class CanaryResult:
    project: str
    model: str
    baseline: str
    canary: str
    result: Result


def canary_results(
    query: Query,
    since: datetime,
    until: datetime,
    *,
    alpha: float = 0.05,
    tune_n: int = 1000,
    min_samples: int = 2,
) -> list[CanaryResult]:
    """Each canary against its model's current version, on every outcome with data.

    Current: the version last promoted (``llmloop models promote``) when it has
    traffic in the span, else the version with the most completions; every other
    version with traffic is a canary. Cumulative over the span: the test is
    always valid, so recomputing it every window is looking at it every window.
    """
    promoted = current_versions(query)
    traffic = query(
        f"SELECT project_id, model, model_version, uniqExact(event_id) FROM completions "
        f"WHERE model_version != '' AND ts >= {{since:{DT}}} AND ts < {{until:{DT}}} "
        "GROUP BY project_id, model, model_version",
        {"since": since, "until": until},
    )
    busiest: dict[tuple[str, str], tuple[int, str]] = {}
    for project, model, version, n in traffic:
        key = (str(project), str(model))
        busiest[key] = max(busiest.get(key, (0, "")), (int(n), str(version)))
    out: list[CanaryResult] = []
    for outcome in OUTCOMES:
        by_model: dict[tuple[str, str], dict[str, tuple[int, float, float]]] = {}
        for (project, model, version), sums in version_sums(query, outcome, since, until).items():
            by_model.setdefault((project, model), {})[version] = sums
        rate = OUTCOMES[outcome].kind == "rate"
        for key, versions in by_model.items():
            if len(versions) < 2:
                continue
            # One current version per model for every outcome: by completions, not by
            # how many of them this outcome happens to have.
            baseline = promoted.get(key)
            if baseline not in versions:
                baseline = busiest.get(key, (0, ""))[1]
            if baseline not in versions:
                continue
            base_arm = Arm.from_sums(*versions[baseline], rate=rate)
            for version, sums in sorted(versions.items()):
                if version == baseline or min(sums[0], base_arm.n) < min_samples:
                    continue
                result = compare_arms(
                    outcome, base_arm, Arm.from_sums(*sums, rate=rate), alpha=alpha, tune_n=tune_n
                )
                if result is not None:
                    out.append(CanaryResult(key[0], key[1], baseline, version, result))
    return out


def canary_metrics(
    query: Query, start: datetime, end: datetime, *, lookback_s: float, min_samples: int
) -> list[MetricComputed]:
    """``canary_outcome_difference`` of every canary, published with the window ``start..end``."""

    sinks: dict[tuple[str, str], MetricSink] = {}
    for c in canary_results(
        query, end - timedelta(seconds=lookback_s), end, min_samples=min_samples
    ):
        sink = sinks.setdefault(
            (c.project, c.model),
            MetricSink({"project": c.project, "model": c.model, "prompt_version": ""}, start, end),
        )
        r = c.result
        sink.add(
            CANARY_METRIC,
            r.diff,
            min(r.a.n, r.b.n),
            r.p_value,
            model_version=c.canary,
            baseline_version=c.baseline,
            outcome=r.outcome,
        )
    return [m for sink in sinks.values() for m in sink.metrics]
