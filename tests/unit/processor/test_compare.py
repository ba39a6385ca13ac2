"""The always-valid A/B comparison: error rates under repeated looks, coverage, power.

Stated bound: with no difference, 200 simulated experiments each looked at 30 times
(every 40 completions per version, thumbs-up rate 0.3) reject at alpha = 0.05 in at
most 18 of 200 (if the real rate were 0.05, 19 or more happens with probability
< 0.01); a z-test re-run at each look rejects far more often, which shows that the
simulation can tell the two apart.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import beta as beta_dist
from scipy.stats import norm

from llmloop_processor.compare import Arm, compare_arms, compare_versions

REPS, LOOKS, STEP, ALPHA = 200, 30, 40, 0.05


def looks(p_a: float, p_b: float, seed: int):
    """Per experiment, per look: the cumulative arms."""
    rng = np.random.default_rng(seed)
    a = rng.random((REPS, LOOKS * STEP)) < p_a
    b = rng.random((REPS, LOOKS * STEP)) < p_b
    for r in range(REPS):
        yield [
            (
                Arm.from_sums(n, float(a[r, :n].sum()), float(a[r, :n].sum()), rate=True),
                Arm.from_sums(n, float(b[r, :n].sum()), float(b[r, :n].sum()), rate=True),
            )
            for n in range(STEP, LOOKS * STEP + 1, STEP)
        ]


def z_test_p(a: Arm, b: Arm) -> float:
    pooled = (a.mean * a.n + b.mean * b.n) / (a.n + b.n)
    se = math.sqrt(pooled * (1 - pooled) * (1 / a.n + 1 / b.n)) or 1e-12
    return 2 * norm.sf(abs(b.mean - a.mean) / se)


def clopper_pearson_upper(k: int, n: int, level: float = 0.95) -> float:
    return float(beta_dist.ppf(level, k + 1, n - k)) if k < n else 1.0


def test_no_difference_stays_non_significant_across_repeated_looks():
    always_valid = naive = 0
    for experiment in looks(0.3, 0.3, seed=11):
        results = [compare_arms("thumbs_up", a, b, alpha=ALPHA, tune_n=600) for a, b in experiment]
        always_valid += any(r.significant for r in results)
        naive += any(z_test_p(a, b) <= ALPHA for a, b in experiment)
    upper = clopper_pearson_upper(always_valid, REPS)
    assert always_valid <= 18, (always_valid, upper)
    # Peeking at a fixed-horizon test 30 times: several times alpha.
    assert naive >= 2.5 * ALPHA * REPS, naive


def test_the_confidence_sequence_covers_the_truth_at_every_look_and_detects_a_difference():
    covered = detected = 0
    for experiment in looks(0.5, 0.6, seed=12):
        results = [compare_arms("thumbs_up", a, b, alpha=ALPHA, tune_n=600) for a, b in experiment]
        covered += all(r.diff_interval[0] <= 0.1 <= r.diff_interval[1] for r in results)
        detected += results[-1].significant
        first = next((r for r in results if r.significant), None)
        # Once significant, the interval excludes 0 on the right side.
        assert first is None or first.diff_interval[0] > 0
    assert covered >= 0.95 * REPS - 5  # simultaneous over 30 looks; nominal >= 95%
    assert detected >= 0.8 * REPS  # 1,200 per version, 0.5 vs 0.6


def test_each_versions_interval_and_direction():
    a = Arm.from_sums(1000, 300.0, 300.0, rate=True)
    b = Arm.from_sums(1000, 400.0, 400.0, rate=True)
    r = compare_arms("thumbs_up", a, b)
    assert r.a_interval[0] < 0.3 < r.a_interval[1] and r.b_interval[0] < 0.4 < r.b_interval[1]
    assert r.diff == pytest.approx(0.1) and r.significant and not r.b_worse
    # More negative feedback on B is worse; so is a lower thumbs-up rate.
    assert compare_arms("negative_feedback", a, b).b_worse
    assert compare_arms("thumbs_up", b, a).b_worse
    assert compare_arms("thumbs_up", Arm.from_sums(1, 1.0, 1.0, rate=True), b) is None


def test_means_use_the_sample_variance():
    # latency: A 100 +- 10 ms, B 103 +- 10 ms, 2,000 each.
    rng = np.random.default_rng(3)
    xa, xb = rng.normal(100, 10, 2000), rng.normal(103, 10, 2000)
    sums = {
        "latency_ms": {
            "v1": (2000, float(xa.sum()), float((xa * xa).sum())),
            "v2": (2000, float(xb.sum()), float((xb * xb).sum())),
        }
    }
    r = compare_versions(sums, "v1", "v2")["latency_ms"]
    assert r.a.var == pytest.approx(100, rel=0.1)
    assert r.diff_interval[0] < 3 < r.diff_interval[1] and r.significant and r.b_worse
    assert compare_versions({"latency_ms": {"v1": sums["latency_ms"]["v1"]}}, "v1", "v2") == {
        "latency_ms": None
    }
