"""The evaluation gate: preference accuracy, reward margin, win rate with its binomial test."""

from __future__ import annotations

import pytest

from llmloop_retraining.evaluate import GateConfig, PairLogps, evaluate


def test_a_policy_that_learned_the_preference_passes():
    base = PairLogps(chosen=[-10, -12, -9, -11] * 5, rejected=[-11, -10, -10, -10] * 5)
    policy = PairLogps(chosen=[-8, -9, -7, -8] * 5, rejected=[-13, -12, -12, -12] * 5)
    result = evaluate(policy, base, beta=0.1)
    m = result.metrics
    assert m["preference_accuracy"] == 1.0 and m["base_preference_accuracy"] == 0.5
    # (policy - base) on chosen: +2, +3, +2, +3; on rejected: -2 each -> margins 4, 5, 4, 5.
    assert m["reward_margin"] == pytest.approx(0.1 * 4.5)
    assert m["wins"] == 10 and m["losses"] == 0 and m["win_rate"] == 1.0
    assert m["win_p_value"] == pytest.approx(0.5**10)
    assert result.gate.passed and all(r.startswith("ok:") for r in result.gate.reasons)


def test_a_policy_no_better_than_its_base_fails_and_says_why():
    same = PairLogps(chosen=[-10, -9] * 10, rejected=[-9, -10] * 10)
    result = evaluate(same, same, beta=0.1)
    assert not result.gate.passed
    text = " ".join(result.gate.reasons)
    assert "failed: mean reward margin 0.0000" in text and "failed: win rate vs base 0.500" in text


def test_too_few_held_out_pairs_fail_the_gate():
    few = PairLogps(chosen=[-1, -1], rejected=[-5, -5])
    base = PairLogps(chosen=[-5, -5], rejected=[-1, -1])
    result = evaluate(few, base, beta=0.1, config=GateConfig(min_eval_pairs=8))
    assert not result.gate.passed
    assert any("held-out pairs 2" in r for r in result.gate.reasons)


def test_mismatched_inputs_are_an_error():
    with pytest.raises(ValueError, match="same pairs"):
        evaluate(PairLogps([1.0], [0.0]), PairLogps([1.0, 2.0], [0.0, 1.0]), beta=0.1)
