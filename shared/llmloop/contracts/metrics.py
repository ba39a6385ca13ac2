"""The metric catalogue: every metric the processor publishes, its labels, unit and test.

One list that three parties read: the statistics emit only names found here
(``MetricSink`` refuses others), ``llmloop rules check`` validates a rule's
metric, label matchers and threshold against it, and the dashboards are built
from its names. A metric whose unit depends on a label (a bias gap is a
difference of proportions for a rate, of VADER scores for sentiment, a relative
difference for length) says so in ``unit_by``; a rule on it must match one value.

Every metric carries ``project``, ``model`` and ``prompt_version``. A metric
with ``p_value`` carries the p-value of a test, adjusted (Holm) over its
``family``: every metric of that name in one key's window that shares the
``family`` labels. ``p_value_raw`` keeps the test's own value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

KEY_LABELS = ("project", "model", "prompt_version")


@dataclass(frozen=True)
class Unit:
    """What a value means and the range it can take (a threshold outside it is a mistake)."""

    name: str
    description: str
    low: float = -math.inf
    high: float = math.inf


UNITS = {
    u.name: u
    for u in (
        Unit(
            "mmd2",
            "squared maximum mean discrepancy (RBF kernel); scale depends on the model",
            -2,
            2,
        ),
        Unit(
            "null_multiple",
            "the statistic divided by the 95th percentile of its permutation null "
            "(1 = as large as chance gives 1 time in 20 at this sample size)",
        ),
        Unit("cosine_distance", "1 - cosine similarity", 0, 2),
        Unit("auc", "ROC AUC (0.5 = indistinguishable)", 0, 1),
        Unit("psi", "population stability index, small-sample corrected", 0),
        Unit("ks", "Kolmogorov-Smirnov statistic", 0, 1),
        Unit("proportion", "a share, 0..1", 0, 1),
        Unit("proportion_diff", "a difference of two shares, -1..1", -1, 1),
        Unit("ratio", "min / max of non-negative values, 0..1", 0, 1),
        Unit("sentiment", "VADER compound score, -1..1", -1, 1),
        Unit("sentiment_diff", "a difference of VADER compound scores, -2..2", -2, 2),
        Unit("chars", "characters", 0),
        Unit("relative_diff", "a / b - 1 (-0.25: a is 25% below b)", -1),
        Unit("ms", "milliseconds", 0),
        Unit("ms_diff", "a difference of milliseconds"),
        Unit("usd_diff", "a difference of US dollars"),
        Unit("usd_per_hour", "US dollars per hour", 0),
        Unit("rate", "events per completion (can exceed 1)", 0),
    )
}

RATE_OUTCOMES = ("negative_feedback", "toxicity", "refusal")
MEAN_OUTCOMES = ("sentiment", "length")
OUTCOMES = RATE_OUTCOMES + MEAN_OUTCOMES
# What `llmloop compare` and the canary metric compare between model versions.
VERSION_OUTCOMES = (
    "thumbs_up",
    "negative_feedback",
    "mean_score",
    "toxicity",
    "refusal",
    "latency_ms",
    "cost_usd",
)
# Outcomes that only exist once users had time to react: computed on settled windows.
FEEDBACK_OUTCOMES = ("negative_feedback",)


@dataclass(frozen=True)
class MetricSpec:
    """One published metric."""

    name: str
    description: str
    unit: str = ""
    labels: tuple[str, ...] = ()  # beyond KEY_LABELS
    p_value: bool = False
    family: tuple[str, ...] = ()  # labels that split the multiplicity family
    # label -> value -> unit, where the unit depends on a label
    unit_by: dict[str, dict[str, str]] = field(default_factory=dict)
    values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # closed label vocabularies

    @property
    def all_labels(self) -> tuple[str, ...]:
        return KEY_LABELS + self.labels

    def unit_for(self, labels: dict[str, str]) -> str | None:
        """The unit of the values a label set selects; None when it mixes units."""
        for label, units in self.unit_by.items():
            value = labels.get(label)
            return units.get(value) if value is not None else None
        return self.unit


_DRIFT = ("field", "reference")
_FIELDS = {"field": ("prompt", "completion")}
_BIAS = ("attribute", "outcome")
_BIAS_VALUES = {"outcome": OUTCOMES}
_GAP_UNITS = {
    "outcome": {
        **dict.fromkeys(RATE_OUTCOMES, "proportion_diff"),
        "sentiment": "sentiment_diff",
        "length": "chars",
    }
}
_SEGMENT_GAP_UNITS = {"outcome": {**_GAP_UNITS["outcome"], "length": "relative_diff"}}
_LEVEL_UNITS = {
    "outcome": {
        **dict.fromkeys(RATE_OUTCOMES, "proportion"),
        "sentiment": "sentiment",
        "length": "chars",
    }
}

CATALOGUE: dict[str, MetricSpec] = {
    m.name: m
    for m in (
        MetricSpec(
            "drift_embedding_score",
            "MMD² between the reference and the window as a multiple of its permutation "
            "null's 95th percentile, after collapsing duplicates and sessions; the "
            "embedding-drift rule reads it. Model-independent: 1 is chance level.",
            "null_multiple",
            _DRIFT,
            p_value=True,
            values=_FIELDS,
        ),
        MetricSpec(
            "drift_embedding_mmd",
            "MMD² (RBF kernel, median-heuristic bandwidth) between the reference and the "
            "window, with its permutation p-value. The raw scale depends on the model.",
            "mmd2",
            _DRIFT,
            p_value=True,
            values=_FIELDS,
        ),
        MetricSpec(
            "drift_embedding_domain_auc",
            "Out-of-fold ROC AUC of a linear classifier telling the windows apart, with a "
            "Mann-Whitney p-value.",
            "auc",
            _DRIFT,
            p_value=True,
            values=_FIELDS,
        ),
        MetricSpec(
            "drift_embedding_centroid_cos",
            "Cosine distance between the centroids (descriptive: it has a floor that "
            "shrinks with the sample size).",
            "cosine_distance",
            _DRIFT,
            values=_FIELDS,
        ),
        MetricSpec(
            "drift_feature_psi",
            "Population stability index of a scalar feature over reference-quantile bins "
            "(at least 10 reference rows per bin), minus its expected value under no "
            "change (descriptive).",
            "psi",
            ("feature", "reference"),
        ),
        MetricSpec(
            "drift_feature_ks",
            "Two-sample Kolmogorov-Smirnov statistic of a scalar feature, with its p-value.",
            "ks",
            ("feature", "reference"),
            p_value=True,
        ),
        MetricSpec(
            "bias_segment_gap",
            "One segment against the rest of its attribute: the difference of rates "
            "(proportion), of mean sentiment (VADER), or of mean length (relative), "
            "with a two-proportion / Fisher or Welch p-value, Holm-adjusted over every "
            "segment of every attribute for the outcome. The bias rules read it.",
            labels=(*_BIAS, "segment"),
            p_value=True,
            family=("outcome",),
            unit_by=_SEGMENT_GAP_UNITS,
            values=_BIAS_VALUES,
        ),
        MetricSpec(
            "bias_gap",
            "Largest minus smallest segment value of an attribute, with an omnibus "
            "p-value (chi-square for rates, Alexander-Govern for means).",
            labels=_BIAS,
            p_value=True,
            family=("outcome",),
            unit_by=_GAP_UNITS,
            values=_BIAS_VALUES,
        ),
        MetricSpec(
            "bias_ratio",
            "Smallest / largest segment value (four-fifths rule: below 0.8 is adverse); "
            "only for non-negative outcomes (rates, length).",
            "ratio",
            _BIAS,
            values={"outcome": (*RATE_OUTCOMES, "length")},
        ),
        MetricSpec(
            "bias_segment_value",
            "One segment's rate or mean.",
            labels=(*_BIAS, "segment"),
            unit_by=_LEVEL_UNITS,
            values=_BIAS_VALUES,
        ),
        MetricSpec("feedback_thumbs_up_rate", "Share of thumbs that are up.", "proportion"),
        MetricSpec("feedback_mean_score", "Mean score rescaled to 0..1.", "proportion"),
        MetricSpec("feedback_correction_rate", "Corrections per completion.", "rate"),
        MetricSpec(
            "negative_feedback_rate",
            "Share of completions with feedback whose feedback is negative (a thumbs "
            "down, a score in the lower half of its scale, or a correction).",
            "proportion",
        ),
        MetricSpec("toxicity_rate", "Share of enriched completions flagged toxic.", "proportion"),
        MetricSpec("refusal_rate", "Share of enriched completions that refuse.", "proportion"),
        MetricSpec("latency_p95_ms", "95th percentile latency of the window.", "ms"),
        MetricSpec("cost_usd_per_hour", "Spend in the window, scaled to an hour.", "usd_per_hour"),
        MetricSpec(
            "canary_outcome_difference",
            "A canary model version minus its model's current one (the last promoted, else "
            "the busiest) on an outcome, over the canary lookback (cumulative), with an "
            "always-valid mSPRT p-value (see llmloop_processor.compare), Holm-adjusted over "
            "the canaries of the window per outcome. prompt_version is empty: all prompts.",
            labels=("model_version", "baseline_version", "outcome"),
            p_value=True,
            family=("outcome",),
            unit_by={
                "outcome": {
                    **dict.fromkeys(
                        ("thumbs_up", "negative_feedback", "mean_score", "toxicity", "refusal"),
                        "proportion_diff",
                    ),
                    "latency_ms": "ms_diff",
                    "cost_usd": "usd_diff",
                }
            },
            values={"outcome": VERSION_OUTCOMES},
        ),
    )
}


def spec(name: str) -> MetricSpec:
    """The catalogue entry of ``name``; ``KeyError`` names the known metrics."""
    try:
        return CATALOGUE[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(CATALOGUE)}") from None
