"""The panel catalogue: every dashboard and panel, once, for Grafana and the console.

Each dashboard answers one question (see README). A panel is a title, a kind
(timeseries | table | stat | barchart), a unit and one ClickHouse query written
with the Grafana ClickHouse plugin's macros (``$__timeFilter(col)``,
``$__timeInterval(col)``) and the four filters as template variables
(``${project:singlequote}``, model, prompt_version, model_version). Two
renderers read it:

* ``grafana/build.py`` writes grafana/dashboards/*.json (a contract test checks
  the committed files are exactly what it makes from this catalogue);
* the console (``llmloop_console.panels``) turns the same SQL into bound
  parameters on the store port and draws the result with the same kind and unit.

So the two can never disagree: a panel exists in both or in neither. The time
series come in Grafana's long or wide form (a time column, string columns that
name the series, numeric value columns); both renderers pivot them the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmloop.contracts.metrics import spec

# The template variables every dashboard filters by: (name, label, completions column).
VARIABLES = (
    ("project", "Project", "project_id"),
    ("model", "Model", "model"),
    ("prompt_version", "Prompt version", "prompt_version"),
    ("model_version", "Model version", "model_version"),
)

# Completions filtered by every template variable.
C_FILTER = (
    "project_id IN (${project:singlequote}) AND model IN (${model:singlequote}) "
    "AND prompt_version IN (${prompt_version:singlequote}) "
    "AND model_version IN (${model_version:singlequote})"
)
# Metrics carry their dimensions as labels; a metric without a label is not filtered by it.
M_FILTER = (
    "project_id IN (${project:singlequote}) "
    "AND (labels['model'] = '' OR labels['model'] IN (${model:singlequote})) "
    "AND (labels['prompt_version'] = '' OR labels['prompt_version'] IN (${prompt_version:singlequote}))"
)
# Feedback joined to the completion it is about, for its model and versions.
FEEDBACK = (
    "feedback AS f INNER JOIN (SELECT event_id, model, prompt_version, model_version FROM completions "
    f"WHERE {C_FILTER}) AS c ON f.completion_id = c.event_id"
)


@dataclass(frozen=True)
class Panel:
    title: str
    sql: str
    kind: str = "timeseries"  # timeseries | table | stat | barchart
    description: str = ""
    unit: str = ""
    width: int = 12
    height: int = 8
    # The shipped alert rule whose threshold the chart draws as a line (Grafana: a
    # threshold step; the console: a dashed series). Resolved by the renderer, which
    # may know the rules: this package imports no service.
    threshold_rule: str = ""


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    question: str
    panels: list[Panel]


OVERVIEW = Dashboard(
    "llmloop-overview",
    "llmloop / Overview",
    "How much traffic does each model serve, how fast, and what does it cost?",
    [
        Panel(
            "Requests",
            f"""
            SELECT $__timeInterval(ts) AS time, model, count() AS requests
            FROM completions WHERE $__timeFilter(ts) AND {C_FILTER}
            GROUP BY time, model ORDER BY time""",
            unit="short",
        ),
        Panel(
            "Latency p50 / p95 / p99",
            f"""
            SELECT $__timeInterval(ts) AS time,
                   quantile(0.5)(latency_ms) AS p50, quantile(0.95)(latency_ms) AS p95,
                   quantile(0.99)(latency_ms) AS p99
            FROM completions WHERE $__timeFilter(ts) AND {C_FILTER} AND latency_ms IS NOT NULL
            GROUP BY time ORDER BY time""",
            unit="ms",
        ),
        Panel(
            "Tokens by model",
            f"""
            SELECT $__timeInterval(ts) AS time, model,
                   sum(prompt_tokens) + sum(completion_tokens) AS tokens
            FROM completion_enrichments WHERE $__timeFilter(ts) AND {C_FILTER}
            GROUP BY time, model ORDER BY time""",
            description="Reported by the app, or estimated from the text when it did not say.",
            unit="short",
        ),
        Panel(
            "Cost by model",
            f"""
            SELECT $__timeInterval(ts) AS time, model, sum(cost_usd) AS cost
            FROM completion_enrichments WHERE $__timeFilter(ts) AND {C_FILTER}
            GROUP BY time, model ORDER BY time""",
            description="Reported by the app, or computed from the price table.",
            unit="currencyUSD",
        ),
        Panel(
            "Latency by model",
            f"""
            SELECT model, count() AS requests, round(quantile(0.5)(latency_ms)) AS p50_ms,
                   round(quantile(0.95)(latency_ms)) AS p95_ms, round(quantile(0.99)(latency_ms)) AS p99_ms
            FROM completions WHERE $__timeFilter(ts) AND {C_FILTER}
            GROUP BY model ORDER BY requests DESC""",
            kind="table",
            width=24,
            height=6,
        ),
    ],
)

QUALITY = Dashboard(
    "llmloop-quality",
    "llmloop / Quality",
    "Do users like the answers, and which model, prompt version or model version made it better or worse?",
    [
        Panel(
            "Thumbs-up rate by model",
            f"""
            SELECT $__timeInterval(f.ts) AS time, c.model AS model,
                   avg(f.value > 0) AS thumbs_up_rate
            FROM {FEEDBACK} WHERE $__timeFilter(f.ts) AND f.kind = 'thumbs'
            GROUP BY time, model ORDER BY time""",
            unit="percentunit",
        ),
        Panel(
            "Mean score (0-1) by prompt version",
            f"""
            SELECT $__timeInterval(f.ts) AS time, c.prompt_version AS prompt_version,
                   avg((f.value - f.scale_min) / (f.scale_max - f.scale_min)) AS mean_score
            FROM {FEEDBACK} WHERE $__timeFilter(f.ts) AND f.kind = 'score'
            GROUP BY time, prompt_version ORDER BY time""",
            unit="percentunit",
        ),
        Panel(
            "Correction rate by model version",
            f"""
            SELECT $__timeInterval(ts) AS time, model_version,
                   countIf(event_id IN (SELECT completion_id FROM feedback WHERE kind = 'correction'))
                     / count() AS correction_rate
            FROM completions WHERE $__timeFilter(ts) AND {C_FILTER}
            GROUP BY time, model_version ORDER BY time""",
            unit="percentunit",
        ),
        Panel(
            "Toxic and refusing completions",
            f"""
            SELECT $__timeInterval(ts) AS time, model,
                   avg(toxic) AS toxicity_rate, avg(refusal) AS refusal_rate
            FROM completion_enrichments WHERE $__timeFilter(ts) AND {C_FILTER}
            GROUP BY time, model ORDER BY time""",
            unit="percentunit",
        ),
        Panel(
            "Feedback volume by kind",
            f"""
            SELECT $__timeInterval(f.ts) AS time, f.kind AS kind, count() AS feedback
            FROM {FEEDBACK} WHERE $__timeFilter(f.ts)
            GROUP BY time, kind ORDER BY time""",
            unit="short",
        ),
        Panel(
            "Quality by model, prompt version and model version",
            f"""
            SELECT c.model AS model, c.prompt_version AS prompt_version, c.model_version AS model_version,
                   countIf(f.kind = 'thumbs') AS thumbs, round(avgIf(f.value > 0, f.kind = 'thumbs'), 3) AS thumbs_up_rate,
                   round(avgIf((f.value - f.scale_min) / (f.scale_max - f.scale_min), f.kind = 'score'), 3) AS mean_score,
                   countIf(f.kind = 'correction') AS corrections
            FROM {FEEDBACK} WHERE $__timeFilter(f.ts)
            GROUP BY model, prompt_version, model_version ORDER BY thumbs DESC""",
            kind="table",
            width=24,
            height=7,
        ),
        Panel(
            "A/B: canary versions against the current one (always valid; `llmloop compare`)",
            f"""
            SELECT labels['model'] AS model, labels['model_version'] AS canary,
                   labels['baseline_version'] AS current, labels['outcome'] AS outcome,
                   round(argMax(value, window_end), 4) AS difference,
                   argMax(p_value, window_end) AS p, argMax(sample_size, window_end) AS n,
                   if(p < 0.05, 'significant', '') AS verdict, max(window_end) AS as_of
            FROM metrics WHERE name = '{spec("canary_outcome_difference").name}'
              AND $__timeFilter(window_end) AND {M_FILTER}
            GROUP BY model, canary, current, outcome ORDER BY p""",
            kind="table",
            description="Each version that is not the current one (the last promoted, else the "
            "busiest) minus the current one, cumulatively over the canary lookback (7 days by "
            "default), with an mSPRT p-value that stays valid however often it is looked at. "
            "Per-version values with intervals: `llmloop compare --model M --a A --b B`.",
            width=24,
            height=7,
        ),
    ],
)


def metric(name: str) -> str:
    """A metric name, checked against the metric catalogue (a typo fails the build)."""
    return spec(name).name


def metric_series(name: str, series: str, value: str = "value") -> str:
    """One metric over time, one series per ``series`` expression (long format)."""
    name = metric(name)
    return f"""
        SELECT window_end AS time, {series} AS series, {value} AS {name if value == "value" else value}
        FROM metrics WHERE name = '{name}' AND $__timeFilter(window_end) AND {M_FILTER}
        ORDER BY time"""


DRIFT = Dashboard(
    "llmloop-drift",
    "llmloop / Drift",
    "Are prompts and completions still like the reference window, and is the change significant?",
    [
        Panel(
            "Embedding drift score (multiples of chance; the embedding-drift rule's line)",
            metric_series("drift_embedding_score", "concat(labels['model'], ' ', labels['field'])"),
            description="MMD² over the 95th percentile of its permutation null, after "
            "duplicates and sessions are collapsed: 1 is as large as chance gives 1 time in "
            "20. The rule fires when it is above the line with an adjusted p < 0.01 in 2 of "
            "3 non-overlapping windows.",
            threshold_rule="embedding-drift",
        ),
        Panel(
            "Embedding drift (MMD², RBF kernel)",
            metric_series("drift_embedding_mmd", "concat(labels['model'], ' ', labels['field'])"),
            description="Maximum mean discrepancy between the reference window and each window; "
            "see the p-values panel for significance.",
        ),
        Panel(
            "Embedding drift p-value (permutation test)",
            metric_series(
                "drift_embedding_mmd", "concat(labels['model'], ' ', labels['field'])", "p_value"
            ),
            description="Holm-adjusted over prompt and completion: below the rule's 0.01, the "
            "window differs from the reference beyond sampling noise.",
        ),
        Panel(
            "Domain classifier ROC AUC",
            metric_series(
                "drift_embedding_domain_auc", "concat(labels['model'], ' ', labels['field'])"
            ),
            description="0.5: a classifier cannot tell the windows apart; 1.0: fully separable.",
        ),
        Panel(
            "Centroid cosine distance",
            metric_series(
                "drift_embedding_centroid_cos", "concat(labels['model'], ' ', labels['field'])"
            ),
        ),
        Panel(
            "Scalar drift (PSI) by feature",
            metric_series("drift_feature_psi", "concat(labels['model'], ' ', labels['feature'])"),
            description="Population stability index: < 0.1 stable, 0.1-0.25 moderate, > 0.25 major.",
        ),
        Panel(
            "Sample sizes",
            metric_series(
                "drift_embedding_mmd",
                "concat(labels['model'], ' ', labels['field'])",
                "sample_size",
            ),
            description="Drift is judged on a sample bounded so the processor keeps up.",
            unit="short",
        ),
        Panel(
            "Latest drift verdict per model and field, with its reference window",
            f"""
            SELECT labels['model'] AS model, labels['prompt_version'] AS prompt_version,
                   labels['field'] AS field, labels['reference'] AS reference,
                   round(argMax(value, window_end), 5) AS mmd2, argMax(p_value, window_end) AS p,
                   argMax(sample_size, window_end) AS n, max(window_end) AS latest_window
            FROM metrics WHERE name = '{metric("drift_embedding_mmd")}' AND $__timeFilter(window_end) AND {M_FILTER}
            GROUP BY model, prompt_version, field, reference ORDER BY p""",
            kind="table",
            width=24,
            height=7,
        ),
    ],
)

BIAS = Dashboard(
    "llmloop-bias",
    "llmloop / Bias",
    "Does any user segment or demographic group get worse answers than the others, significantly?",
    [
        Panel(
            "Negative feedback: each segment against the rest (the bias rule's line)",
            f"""
            SELECT window_end AS time, concat(labels['attribute'], '=', labels['segment']) AS series,
                   value AS gap
            FROM metrics WHERE name = '{metric("bias_segment_gap")}' AND labels['outcome'] = 'negative_feedback'
              AND $__timeFilter(window_end) AND {M_FILTER}
            ORDER BY time""",
            description="Segment rate minus the rate of everyone else, in points; the rule "
            "fires above the line with a Holm-adjusted p < 0.05 in 2 of 3 windows.",
            unit="percentunit",
            threshold_rule="bias-negative-feedback",
        ),
        Panel(
            "Gap between best- and worst-served segment",
            metric_series("bias_gap", "concat(labels['attribute'], ' / ', labels['outcome'])"),
            description="max - min over segments of the outcome's rate or mean.",
        ),
        Panel(
            "Ratio worst / best (four-fifths rule: below 0.8 is adverse)",
            metric_series("bias_ratio", "concat(labels['attribute'], ' / ', labels['outcome'])"),
        ),
        Panel(
            "Per-segment negative-feedback rate",
            f"""
            SELECT window_end AS time, concat(labels['attribute'], '=', labels['segment']) AS series,
                   value AS rate
            FROM metrics WHERE name = '{metric("bias_segment_value")}' AND labels['outcome'] = 'negative_feedback'
              AND $__timeFilter(window_end) AND {M_FILTER}
            ORDER BY time""",
            unit="percentunit",
            width=24,
        ),
        Panel(
            "Negative-feedback rate by segment, latest window",
            f"""
            SELECT concat(labels['attribute'], '=', labels['segment']) AS segment,
                   round(argMax(value, window_end), 4) AS negative_feedback_rate
            FROM metrics WHERE name = '{metric("bias_segment_value")}' AND labels['outcome'] = 'negative_feedback'
              AND $__timeFilter(window_end) AND {M_FILTER}
            GROUP BY segment ORDER BY segment""",
            kind="barchart",
            description="Each segment's rate in the newest window of the range (all models).",
            unit="percentunit",
            width=24,
            height=7,
        ),
        Panel(
            "Gaps with their significance",
            f"""
            SELECT labels['model'] AS model, labels['attribute'] AS attribute, labels['outcome'] AS outcome,
                   round(argMax(value, window_end), 4) AS gap, argMax(p_value, window_end) AS p,
                   argMax(sample_size, window_end) AS n, if(p < 0.05, 'significant', '') AS verdict
            FROM metrics WHERE name = '{metric("bias_gap")}' AND $__timeFilter(window_end) AND {M_FILTER}
            GROUP BY model, attribute, outcome ORDER BY p""",
            kind="table",
            width=24,
            height=8,
        ),
    ],
)

ALERTS_RETRAINING = Dashboard(
    "llmloop-alerts-retraining",
    "llmloop / Alerts and retraining",
    "What fired, did on-call hear about it, and what did retraining make of it?",
    [
        Panel(
            "Alert timeline",
            """
            SELECT ts AS time, rule, status, severity, labels['model'] AS model,
                   round(value, 4) AS value, threshold, starts_at, ends_at
            FROM alerts WHERE $__timeFilter(ts) AND project_id IN (${project:singlequote})
            ORDER BY ts DESC LIMIT 500""",
            kind="table",
            width=24,
        ),
        Panel(
            "Webhook deliveries by outcome",
            """
            SELECT $__timeInterval(ts) AS time, outcome, count() AS attempts
            FROM notification_attempts WHERE $__timeFilter(ts) AND project_id IN (${project:singlequote})
            GROUP BY time, outcome ORDER BY time""",
            unit="short",
        ),
        Panel(
            "Dead-lettered notifications (replay with `llmloop alerts dlq replay`)",
            """
            SELECT dead_lettered_at, rule, receiver, receiver_type, http_status, error, failed_attempts
            FROM notification_dead_letters WHERE project_id IN (${project:singlequote})
            ORDER BY dead_lettered_at DESC LIMIT 200""",
            kind="table",
        ),
        Panel(
            "Retrain jobs",
            """
            SELECT job_id, model, argMax(stage, ts) AS stage, round(argMax(progress, ts), 2) AS progress,
                   anyIf(dataset_version, dataset_version != '') AS dataset_version,
                   min(ts) AS requested_at, max(ts) AS updated_at
            FROM retrain_jobs WHERE $__timeFilter(ts) AND project_id IN (${project:singlequote})
              AND model IN (${model:singlequote})
            GROUP BY job_id, model ORDER BY updated_at DESC LIMIT 200""",
            kind="table",
            width=24,
        ),
        Panel(
            "Model versions and gate verdicts",
            """
            SELECT model, version, status, if(gate_passed, 'passed', 'failed') AS gate,
                   arrayStringConcat(gate_reasons, '; ') AS reasons, dataset_version, job_id, registered_at
            FROM model_versions FINAL WHERE project_id IN (${project:singlequote})
              AND model IN (${model:singlequote})
            ORDER BY registered_at DESC LIMIT 200""",
            kind="table",
            width=24,
        ),
    ],
)

DASHBOARDS = [OVERVIEW, QUALITY, DRIFT, BIAS, ALERTS_RETRAINING]


def dashboard(uid: str) -> Dashboard:
    """The dashboard whose uid is ``uid`` (``KeyError`` if none)."""
    for d in DASHBOARDS:
        if d.uid == uid:
            return d
    raise KeyError(uid)
