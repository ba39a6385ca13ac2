"""Drift statistics: known answers on synthetic data, and soundness on real MiniLM embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from llmloop_processor.drift import (
    centroid_cosine_distance,
    classifier_auc,
    ks,
    mmd_test,
    psi,
)

ALPHA = 0.05


def test_mmd_is_near_zero_and_not_significant_for_one_distribution() -> None:
    rng = np.random.default_rng(0)
    result = mmd_test(rng.normal(size=(300, 8)), rng.normal(size=(300, 8)), permutations=100)
    assert abs(result.mmd2) < 0.01
    assert result.p_value > ALPHA


def test_mmd_detects_a_mean_shift() -> None:
    rng = np.random.default_rng(1)
    result = mmd_test(rng.normal(size=(300, 8)), rng.normal(0.5, 1, size=(300, 8)))
    assert result.mmd2 > 0.02
    assert result.p_value < 0.01


def test_mmd_rejects_windows_too_small_to_test() -> None:
    with pytest.raises(ValueError, match="at least 2 samples"):
        mmd_test(np.zeros((1, 4)), np.zeros((5, 4)))


def test_centroid_distance_and_classifier_auc_separate_shifted_windows() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(1, 1, size=(400, 16)), rng.normal(1, 1, size=(400, 16))
    shifted = b + np.r_[3.0, np.zeros(15)]
    assert centroid_cosine_distance(a, b) < 0.02
    assert centroid_cosine_distance(a, shifted) > 0.1
    auc, p = classifier_auc(a, b)
    assert 0.4 < auc < 0.6 and p > ALPHA
    auc, p = classifier_auc(a, shifted)
    assert auc > 0.9 and p < 1e-6


def test_psi_and_ks_on_scalars() -> None:
    rng = np.random.default_rng(3)
    ref, same, moved = rng.normal(size=2000), rng.normal(size=2000), rng.normal(1, 1, size=2000)
    assert psi(ref, same) < 0.05
    assert psi(ref, moved) > 0.25
    assert ks(ref, same)[1] > 0.01
    stat, p = ks(ref, moved)
    assert stat > 0.3 and p < 1e-6
    assert np.isnan(psi(np.array([]), same))


def test_false_alarm_rate_on_real_embeddings_is_at_most_7_percent(topic_embeddings) -> None:
    """Pairs of windows from one distribution: the alarm (p < 0.05) fires in <= 7% of them.

    The issue asks for 100 pairs; a calibrated 5% test exceeds 7/100 by chance about
    13% of the time (Binomial(100, 0.05)), so a single seed says little. 500 pairs make
    the bound meaningful (a 5% test passes with ~99% probability) and stay cheap.
    """
    pool = topic_embeddings["cooking"]
    rng = np.random.default_rng(42)
    trials = 500
    alarms = 0
    for trial in range(trials):
        idx = rng.permutation(len(pool))[:400]
        result = mmd_test(pool[idx[:200]], pool[idx[200:]], permutations=100, seed=trial)
        alarms += result.p_value < ALPHA
    assert alarms / trials <= 0.07, f"{alarms} false alarms in {trials} null trials"


def test_power_on_a_topic_switch_is_at_least_90_percent(topic_embeddings) -> None:
    """Prompts switch topic: with 200 samples per window the alarm fires in >= 90% of trials."""
    ref_pool, cur_pool = topic_embeddings["cooking"], topic_embeddings["programming"]
    rng = np.random.default_rng(7)
    fired = 0
    trials = 20
    for trial in range(trials):
        ref = ref_pool[rng.choice(len(ref_pool), 200, replace=False)]
        cur = cur_pool[rng.choice(len(cur_pool), 200, replace=False)]
        fired += mmd_test(ref, cur, permutations=100, seed=trial).p_value < ALPHA
    assert fired >= 0.9 * trials


def test_partial_topic_shift_is_detected_and_graded(topic_embeddings) -> None:
    """A quarter of the prompts moving to a new topic is drift; MMD grows with the share."""
    ref_pool, new_pool = topic_embeddings["cooking"], topic_embeddings["programming"]
    rng = np.random.default_rng(9)
    ref = ref_pool[rng.choice(len(ref_pool), 200, replace=False)]
    rest = ref_pool[rng.choice(len(ref_pool), 200, replace=False)]
    quarter = np.vstack([rest[:150], new_pool[:50]])
    full = new_pool[200:400]
    partial_result, full_result = mmd_test(ref, quarter), mmd_test(ref, full)
    assert partial_result.p_value < ALPHA
    assert full_result.mmd2 > partial_result.mmd2 > 0
