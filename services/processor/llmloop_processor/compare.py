"""A/B comparison of two model versions on live traffic, valid however often anyone looks.

Per outcome, each version's value (a rate or a mean over its completions) with
a confidence interval, the difference B - A with its interval, and a p-value
for "no difference". All three are *always valid* (anytime-valid): they hold
simultaneously at every sample size, so a team may look every day, or a rule
every five minutes, and stop the first time the result is significant, without
the false-positive inflation that re-running a fixed-horizon z-test causes
(30 daily looks at a 5% z-test reject a true null about a quarter of the time;
``bench``-free proof: tests/unit/processor/test_compare.py).

Method: the normal-mixture sequential probability ratio test (mSPRT; Robbins
1970, Johari, Koomen, Pekelis & Walsh 2017/2022) and its dual, the normal-mixture
confidence sequence (Howard, Ramdas, McAuliffe & Sekhon 2021), on the difference
of means with plug-in variances (asymptotically valid: Waudby-Smith et al.
2023, "Time-uniform central limit theory"). With ``V`` the variance of the
estimated difference ``D`` (``var_a/n_a + var_b/n_b``), ``z = D/sqrt(V)`` and
``u = rho^2 / V`` (the mixture's variance over the information so far),

    Lambda = (1 + u)^(-1/2) * exp(u / (1 + u) * z^2 / 2)         (mixture likelihood ratio)
    p      = min(1, 1 / Lambda)                                  (always-valid p-value)
    CS     = D -/+ sqrt(V * (1 + u) / u * (2 log(1/alpha) + log(1 + u)))

Ville's inequality gives P(exists n: Lambda_n >= 1/alpha) <= alpha under no
difference, hence both guarantees. ``rho`` is tuned so the interval is
tightest when each version has ``tune_n`` observations (the normal-mixture
boundary of Howard et al. 2021, optimised for one intrinsic time:
``rho^2 = (2 log(1/alpha) + log(1 + 2 log(1/alpha))) / I*``); any ``rho`` is
valid, the choice only moves where the test is most powerful. The price of
always-validity: the interval at a given n is wider than a fixed-n one (about
1.5-2x near ``tune_n``).

Each version's own interval uses the same mixture on its mean (V = var/n).
Rates use a variance from (x + 1) / (n + 2), so that a version with no event
yet does not claim certainty. Unit of analysis: the completion (its latest
thumbs, its negative-feedback flag, its mean score, ...), never a feedback row.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np

from llmloop.contracts.feedback import NEGATIVE, NEGATIVE_KINDS
from llmloop_processor.windows import DT

# SQL and parameters in, rows out: a Store's ``query(...).rows``, or the CLI's read
# through a running ``llmloop up``.
Query = Callable[[str, dict[str, Any]], Sequence[Sequence[Any]]]


@dataclass(frozen=True)
class Outcome:
    name: str
    description: str
    kind: Literal["rate", "mean"]
    higher_is_better: bool
    unit: str
    # SQL selecting (event_id, project_id, x) per completion, of the completions that
    # the SQL in place of ``{ids}`` selects (``of``).
    source: str

    def of(self, ids: str) -> str:
        """The outcome of the completions ``ids`` (a query of event ids) selects: the
        join reads those rows, not the whole table (a tick's cost must not grow with
        history)."""
        return self.source.replace("{ids}", ids)


_FEEDBACK = (
    "SELECT project_id, completion_id AS event_id, {expr} AS x FROM feedback "
    "WHERE kind IN ({kinds}) AND completion_id IN ({{ids}}) GROUP BY project_id, completion_id"
)
_ENRICHED = (
    "SELECT event_id, project_id, {expr} AS x FROM completion_enrichments "
    "WHERE {where} AND event_id IN ({{ids}}) LIMIT 1 BY event_id"
)

OUTCOMES: dict[str, Outcome] = {  # in VERSION_OUTCOMES's order (the catalogue's)
    o.name: o
    for o in (
        Outcome(
            "thumbs_up",
            "share of rated completions whose latest thumbs is up",
            "rate",
            True,
            "proportion",
            _FEEDBACK.format(expr="toFloat64(argMax(value, ts) > 0)", kinds="'thumbs'"),
        ),
        Outcome(
            "negative_feedback",
            "share of completions with feedback whose feedback is negative (thumbs down, "
            "a score in the lower half of its scale, or a correction)",
            "rate",
            False,
            "proportion",
            _FEEDBACK.format(expr=NEGATIVE, kinds=NEGATIVE_KINDS),
        ),
        Outcome(
            "mean_score",
            "mean score of scored completions, rescaled to 0..1 by each score's scale",
            "mean",
            True,
            "proportion",
            _FEEDBACK.format(
                expr="avg((value - scale_min) / (scale_max - scale_min))", kinds="'score'"
            ),
        ),
        Outcome(
            "toxicity",
            "share of enriched completions flagged toxic",
            "rate",
            False,
            "proportion",
            _ENRICHED.format(expr="toFloat64(toxic)", where="1"),
        ),
        Outcome(
            "refusal",
            "share of enriched completions that refuse",
            "rate",
            False,
            "proportion",
            _ENRICHED.format(expr="toFloat64(refusal)", where="1"),
        ),
        Outcome(
            "latency_ms",
            "mean latency of completions that report one",
            "mean",
            False,
            "ms",
            "SELECT event_id, project_id, latency_ms AS x FROM completions "
            "WHERE latency_ms IS NOT NULL AND event_id IN ({ids}) LIMIT 1 BY event_id",
        ),
        Outcome(
            "cost_usd",
            "mean cost per completion (the event's, else the price table's)",
            "mean",
            False,
            "usd",
            _ENRICHED.format(expr="cost_usd", where="cost_usd IS NOT NULL"),
        ),
    )
}


# --- the statistics ---------------------------------------------------------------------


@dataclass(frozen=True)
class Arm:
    """Sufficient statistics of one version on one outcome."""

    n: int
    mean: float
    var: float  # per observation (rates: from (x + 1) / (n + 2))

    @classmethod
    def from_sums(cls, n: int, total: float, squares: float, *, rate: bool) -> Arm:
        if n == 0:
            return cls(0, math.nan, math.nan)
        mean = total / n
        if rate:
            shrunk = (total + 1) / (n + 2)
            var = shrunk * (1 - shrunk)
        else:
            var = max(squares / n - mean * mean, 0.0) * n / max(n - 1, 1)
            var = max(var, 1e-12 * max(1.0, mean * mean))
        return cls(n, mean, var)


def mixture_rho2(alpha: float, information: float) -> float:
    """The mixing variance that makes the boundary tightest at ``information`` (= 1/V)."""
    log_term = 2 * math.log(1 / alpha)
    return (log_term + math.log(1 + log_term)) / information


def halfwidth(variance: np.ndarray | float, rho2: np.ndarray | float, alpha: float) -> np.ndarray:
    """Half-width of the normal-mixture confidence sequence for an estimate of ``variance``."""
    v = np.asarray(variance, dtype=float)
    u = np.asarray(rho2, dtype=float) / v
    return np.sqrt(v * (1 + u) / u * (2 * math.log(1 / alpha) + np.log1p(u)))


def msprt_p_value(
    diff: np.ndarray | float, variance: np.ndarray | float, rho2: np.ndarray | float
) -> np.ndarray:
    """Always-valid p-value of "no difference": 1 / the mixture likelihood ratio, capped at 1."""
    d, v = np.asarray(diff, dtype=float), np.asarray(variance, dtype=float)
    u = np.asarray(rho2, dtype=float) / v
    log_lambda = -0.5 * np.log1p(u) + u / (1 + u) * d * d / (2 * v)
    return np.minimum(1.0, np.exp(-log_lambda))


@dataclass(frozen=True)
class Result:
    """One outcome's comparison of B against A."""

    outcome: str
    a: Arm
    b: Arm
    a_interval: tuple[float, float]
    b_interval: tuple[float, float]
    diff: float  # b - a
    diff_interval: tuple[float, float]
    p_value: float
    alpha: float

    @property
    def significant(self) -> bool:
        return self.p_value <= self.alpha

    @property
    def b_worse(self) -> bool:
        """B is significantly worse than A on this outcome."""
        better_up = OUTCOMES[self.outcome].higher_is_better if self.outcome in OUTCOMES else True
        return self.significant and (self.diff < 0 if better_up else self.diff > 0)


def compare_arms(
    outcome: str, a: Arm, b: Arm, *, alpha: float = 0.05, tune_n: int = 1000
) -> Result | None:
    """The always-valid comparison of two arms; None unless each has two observations."""
    if a.n < 2 or b.n < 2:
        return None

    def own(arm: Arm) -> tuple[float, float]:
        v = arm.var / arm.n
        w = float(halfwidth(v, mixture_rho2(alpha, tune_n / arm.var), alpha))
        return arm.mean - w, arm.mean + w

    v = a.var / a.n + b.var / b.n
    rho2 = mixture_rho2(alpha, tune_n / (a.var + b.var))
    diff = b.mean - a.mean
    w = float(halfwidth(v, rho2, alpha))
    p = float(msprt_p_value(diff, v, rho2))
    return Result(outcome, a, b, own(a), own(b), diff, (diff - w, diff + w), p, alpha)


# --- the data ---------------------------------------------------------------------------


def arm_sums(
    query: Query,
    outcome: str,
    model: str,
    versions: tuple[str, ...],
    *,
    project: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, tuple[int, float, float]]:
    """(n, sum, sum of squares) of an outcome per model version, one value per completion."""
    spec = OUTCOMES[outcome]
    where = ["model = {model:String}", "model_version IN {versions:Array(String)}"]
    if project is not None:
        where.append("project_id = {project:String}")
    if since is not None:
        where.append(f"ts >= {{since:{DT}}}")
    if until is not None:
        where.append(f"ts < {{until:{DT}}}")
    chosen = " AND ".join(where)
    sql = f"""
        SELECT c.model_version, count(), sum(o.x), sum(o.x * o.x)
        FROM (SELECT event_id, project_id, model_version FROM completions
              WHERE {chosen} LIMIT 1 BY event_id) AS c
        INNER JOIN ({spec.of(f"SELECT event_id FROM completions WHERE {chosen}")}) AS o
            ON o.event_id = c.event_id AND o.project_id = c.project_id
        WHERE isNotNull(o.x) AND isFinite(o.x)
        GROUP BY c.model_version
    """
    params: dict[str, Any] = {"model": model, "versions": list(versions)}
    if project is not None:
        params["project"] = project
    for name, value in (("since", since), ("until", until)):
        if value is not None:
            params[name] = value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    rows = query(sql, params)
    return {str(v): (int(n), float(s), float(ss)) for v, n, s, ss in rows}


def compare_versions(
    sums: dict[str, dict[str, tuple[int, float, float]]],
    a: str,
    b: str,
    *,
    alpha: float = 0.05,
    tune_n: int = 1000,
) -> dict[str, Result | None]:
    """Every outcome's result from ``sums[outcome][version]`` (None: too little data)."""
    out: dict[str, Result | None] = {}
    for name, per_version in sums.items():
        rate = OUTCOMES[name].kind == "rate"
        arm_a = Arm.from_sums(*per_version.get(a, (0, 0.0, 0.0)), rate=rate)
        arm_b = Arm.from_sums(*per_version.get(b, (0, 0.0, 0.0)), rate=rate)
        out[name] = compare_arms(name, arm_a, arm_b, alpha=alpha, tune_n=tune_n)
    return out
