"""Bias statistics: group comparisons, demographic terms, and soundness with fixed seeds."""

from __future__ import annotations

import random

import numpy as np

from llmloop_processor.bias import compare_means, compare_rates, demographic_groups

ALPHA = 0.05


def test_rates_gap_ratio_and_sizes() -> None:
    groups = ["de"] * 50 + ["en"] * 50 + ["fr"] * 5
    outcomes = [1] * 25 + [0] * 25 + [1] * 10 + [0] * 40 + [1] * 5
    result = compare_rates(groups, outcomes)
    assert result is not None
    assert result.values == {"de": 0.5, "en": 0.2}
    assert result.sizes == {"de": 50, "en": 50}
    assert result.excluded == ["fr"]  # too small to judge
    assert abs(result.gap - 0.3) < 1e-9 and abs(result.ratio - 0.4) < 1e-9
    assert result.p_value is not None and result.p_value < 0.01


def test_rates_ignore_missing_outcomes_and_need_two_groups() -> None:
    assert compare_rates(["a"] * 40, [1] * 40) is None
    result = compare_rates(["a"] * 30 + ["b"] * 30, [np.nan] * 5 + [0] * 55)
    assert result is not None and result.sizes == {"a": 25, "b": 30}
    assert result.p_value == 1.0 and result.ratio == 1.0  # nobody had the outcome: no gap


def test_means_use_kruskal() -> None:
    rng = np.random.default_rng(0)
    groups = ["a"] * 100 + ["b"] * 100
    result = compare_means(groups, np.r_[rng.normal(0.5, 0.2, 100), rng.normal(0.2, 0.2, 100)])
    assert result is not None and result.p_value is not None and result.p_value < 1e-6
    assert 0.2 < result.gap < 0.4


def test_demographic_terms_are_whole_words() -> None:
    assert demographic_groups("My grandmother is retired; what should she read?") == [
        "gender:female",
        "age:old",
    ]
    assert demographic_groups("The theme of the manual") == []  # 'he', 'man' inside words


def test_demographic_terms_match_a_whole_word_regex_per_group() -> None:
    # The definition the one-pass lookup must keep: one case-insensitive \b(term|...)\b
    # search per group, in the table's order.
    import re

    from llmloop.testing.corpus import long_completions
    from llmloop_processor.bias import DEMOGRAPHIC_TERMS

    def reference(text: str) -> list[str]:
        return [
            f"{family}:{group}"
            for family, groups in DEMOGRAPHIC_TERMS.items()
            for group, words in groups.items()
            if re.search(r"\b(?:" + "|".join(words) + r")\b", text, re.IGNORECASE)
        ]

    texts = [t for pair in long_completions("cooking", 100, 3) for t in pair] + [
        "HE said: her Mother's church, the temple-goer; kids & a Retiree (old).",
        "she_her women2 men's he's",
    ]
    terms = [w for groups in DEMOGRAPHIC_TERMS.values() for ws in groups.values() for w in ws]
    texts += [f"Advice for my {w.upper()}-friendly {w}s, un{w}" for w in terms]
    texts += [f"{a}/{b}?" for a, b in zip(terms, reversed(terms), strict=True)]
    # Terms glued by every kind of character: a word boundary is wherever \w stops.
    rng = random.Random(3)
    glue = [*"_-'. ,;:!?/\\()[]0123456789x\t\n", "é", "ß", "  "]
    texts += [
        "".join((w.upper() if rng.random() < 0.2 else w) + rng.choice(glue)
                for w in rng.choices(terms, k=rng.randint(1, 8)))
        for _ in range(2000)
    ]  # fmt: skip
    found = [demographic_groups(t) for t in texts]
    assert found == [reference(t) for t in texts]
    assert sum(map(bool, found)) > len(terms)


def _trial(rng: np.random.Generator, rates: dict[str, float], n: int) -> float:
    groups, outcomes = [], []
    for group, rate in rates.items():
        groups += [group] * n
        outcomes += (rng.random(n) < rate).astype(int).tolist()
    result = compare_rates(groups, outcomes)
    assert result is not None and result.p_value is not None
    return result.p_value


def test_bias_false_alarm_rate_is_at_most_7_percent() -> None:
    """Three segments with one negative-feedback rate: the alarm fires in <= 7% of 500 trials."""
    rng = np.random.default_rng(11)
    rates = {"de-DE": 0.2, "en-US": 0.2, "fr-FR": 0.2}
    alarms = sum(_trial(rng, rates, 200) < ALPHA for _ in range(500))
    assert alarms / 500 <= 0.07, alarms


def test_bias_power_when_one_segment_gets_more_negative_feedback() -> None:
    """de-DE at 35% negative against 20%: the alarm fires in >= 90% of trials at 200 per segment."""
    rng = np.random.default_rng(12)
    rates = {"de-DE": 0.35, "en-US": 0.2, "fr-FR": 0.2}
    fired = sum(_trial(rng, rates, 200) < ALPHA for _ in range(100))
    assert fired >= 90, fired
