"""Generation metrics of the gate: ROUGE-L and BLEU with paired-bootstrap intervals, and the
"not worse than base" checks."""

from __future__ import annotations

import pytest
from sacrebleu.metrics import BLEU

from llmloop_retraining.evaluate import GateConfig, PairLogps, evaluate
from llmloop_retraining.generation import bleu_from_stats, bleu_stats, rouge_l, score_generations

REFS = [f"the answer to question {i} is in the manual on page {i + 3}" for i in range(30)]
GOOD = [f"the answer to question {i} is in the manual on page {i + 3}" for i in range(30)]
HALF = [f"answer {i} is on a page" for i in range(30)]
LOGPS = PairLogps(chosen=[-1.0] * 10, rejected=[-5.0] * 10)
BASE = PairLogps(chosen=[-5.0] * 10, rejected=[-1.0] * 10)


def test_rouge_l_is_the_lcs_f_measure_best_over_references():
    # LCS of "a b c d" and "a c d e" is "a c d": P = R = 3/4.
    assert rouge_l(["a b c d"], ["a c d e"])[0] == pytest.approx(0.75)
    assert rouge_l(["a b c d"], [["x y", "a b c d"]])[0] == 1.0
    assert rouge_l(["nothing shared"], ["a b"])[0] == 0.0


def test_bleu_from_per_answer_statistics_equals_sacrebleu_corpus_bleu():
    hyps = HALF[:10] + GOOD[10:20]
    expected = BLEU().corpus_score(hyps, [REFS[:20]]).score
    assert bleu_from_stats(bleu_stats(hyps, REFS[:20])) == pytest.approx(expected)


def test_scores_and_intervals_of_base_and_fine_tuned():
    m = score_generations(REFS, HALF, GOOD, resamples=300)
    assert m["generated"] == 30
    assert m["rouge_l"] == 1.0 and m["bleu"] == pytest.approx(100.0)
    assert 0 < m["base_rouge_l"] < 0.6 and m["base_bleu"] < 20
    for name in ("rouge_l", "bleu", "base_rouge_l", "base_bleu", "rouge_l_delta", "bleu_delta"):
        assert m[f"{name}_low"] <= m[name] <= m[f"{name}_high"]
    assert m["rouge_l_delta_low"] > 0 and m["bleu_delta_low"] > 0


def test_the_bootstrap_interval_covers_the_population_mean_at_about_its_level():
    # Answers that match their reference with probability 0.6 give ROUGE-L 1 or 0:
    # the 95% interval of 40 of them should cover 0.6 about 95% of the time.
    import numpy as np

    rng = np.random.default_rng(5)
    refs = [f"ref {i}" for i in range(40)]
    covered = 0
    for _ in range(60):
        hyps = [r if rng.random() < 0.6 else "zzz" for r in refs]
        m = score_generations(refs, hyps, hyps, resamples=300, seed=int(rng.integers(1 << 30)))
        covered += m["rouge_l_low"] <= 0.6 <= m["rouge_l_high"]
    assert covered >= 50  # 95% nominal; >= 50/60 fails with probability < 1% at 0.95


def test_a_version_worse_than_base_on_a_required_metric_fails_the_gate():
    worse = score_generations(REFS, GOOD, HALF, resamples=200)
    gate = GateConfig(not_worse_than_base=("rouge_l", "bleu"))
    result = evaluate(LOGPS, BASE, beta=0.1, config=gate, generation=worse)
    assert not result.gate.passed
    failed = [r for r in result.gate.reasons if r.startswith("failed:")]
    assert len(failed) == 2
    assert failed[0].startswith("failed: rouge_l ") and "vs base 1.000" in failed[0]
    assert "difference -0.444 (95% CI -0.444 .. -0.444; need difference >= 0.000)" in failed[0]
    assert failed[1].startswith("failed: bleu ") and "vs base 100.00" in failed[1]
    # The same numbers, the metric not required: shown, not gated.
    shown = evaluate(LOGPS, BASE, beta=0.1, generation=worse)
    assert shown.gate.passed
    assert any(r.startswith("info: rouge_l ") for r in shown.gate.reasons)


def test_margin_and_strict_mode():
    close = score_generations(REFS, GOOD, GOOD[:29] + HALF[29:], resamples=200)
    assert -0.1 < close["rouge_l_delta"] < 0
    loose = GateConfig(not_worse_than_base=("rouge_l",), not_worse_margin={"rouge_l": 0.05})
    assert evaluate(LOGPS, BASE, beta=0.1, config=loose, generation=close).gate.passed
    equal = score_generations(REFS, HALF, HALF, resamples=200)
    assert equal["rouge_l_delta"] == 0 and equal["rouge_l_delta_low"] == 0
    strict = GateConfig(not_worse_than_base=("rouge_l",), not_worse_strict=True)
    assert evaluate(LOGPS, BASE, beta=0.1, config=strict, generation=equal).gate.passed
    noisy = score_generations(REFS, GOOD[::2] + HALF[1::2], GOOD[1::2] + HALF[::2], resamples=200)
    assert noisy["rouge_l_delta_low"] < 0  # a tie on average, but not *shown* not worse
    assert not evaluate(LOGPS, BASE, beta=0.1, config=strict, generation=noisy).gate.passed


def test_benchmark_patterns_and_missing_metrics():
    bench = score_generations(REFS, GOOD, HALF, prefix="bench.qa.", resamples=100)
    held = score_generations(REFS, HALF, GOOD, resamples=100)
    gate = GateConfig(not_worse_than_base=("rouge_l", "bench.*.rouge_l"))
    result = evaluate(LOGPS, BASE, beta=0.1, config=gate, generation={**held, **bench})
    assert [r.split(" ")[1] for r in result.gate.reasons if r.startswith("failed:")] == [
        "bench.qa.rouge_l"
    ]
    nothing = evaluate(LOGPS, BASE, beta=0.1, config=gate)
    assert "failed: rouge_l not computed" in " ".join(nothing.gate.reasons)
