"""Bias statistics: each segment against the rest, with tests that fit the outcome.

Groups come from a completion's ``attributes`` (one segment attribute at a
time, e.g. ``locale``) or from demographic terms found in its prompt (one term
family at a time, e.g. ``gender``). For each outcome, each segment is compared
with every other row of the attribute:

* rates (negative feedback, toxic, refusal): the difference of proportions,
  segment - rest, tested with a 2x2 chi-square, or Fisher's exact test when an
  expected count is below 5; the omnibus test over all segments is a
  chi-square of independence, or a Monte Carlo version of it with small counts;
* means (sentiment, length): the difference of means (sentiment, in VADER
  units) or the relative difference (length, segment / rest - 1), tested with
  Welch's t-test; the omnibus is the Alexander-Govern test (means, unequal
  variances). A ratio (four-fifths rule) only for non-negative outcomes.

The p-values here are each test's own; the statistics adjust them for the
window's multiplicity (Holm, see ``llmloop.contracts.metrics``). Groups with
fewer than ``min_group`` observations are left out as segments (a rate of 1/1
is noise, not bias) but still count in the rest.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from llmloop_processor.words import ascii_words

MIN_GROUP = 20
MONTE_CARLO = 999  # shuffles for the omnibus test when expected counts are small

# Term family -> group -> words (whole-word, case-insensitive). Deliberately short and
# transparent; users extend it through settings rather than a hidden model.
DEMOGRAPHIC_TERMS: dict[str, dict[str, tuple[str, ...]]] = {
    "gender": {
        "female": ("she", "her", "woman", "women", "girl", "girls", "mother", "wife", "female"),
        "male": ("he", "him", "his", "man", "men", "boy", "boys", "father", "husband", "male"),
    },
    "age": {
        "young": ("young", "teen", "teenager", "student", "child", "kid", "kids"),
        "old": ("old", "elderly", "senior", "retired", "retiree", "grandparent", "pensioner"),
    },
    "religion": {
        "christian": ("christian", "church", "catholic"),
        "muslim": ("muslim", "islam", "mosque"),
        "jewish": ("jewish", "judaism", "synagogue"),
        "hindu": ("hindu", "hinduism", "temple"),
    },
}
_GROUP_OF_TERM = {
    word: (family, group)
    for family, groups in DEMOGRAPHIC_TERMS.items()
    for group, words in groups.items()
    for word in words
}
_ORDER = {key: n for n, key in enumerate(dict.fromkeys(_GROUP_OF_TERM.values()))}
_WORD = re.compile(r"\w+")
_GROUP_OF_BYTES = {term.encode(): group for term, group in _GROUP_OF_TERM.items()}


def _groups_in(low: str) -> set[tuple[str, str]]:
    if not low.isascii():
        return {_GROUP_OF_TERM[w] for w in set(_WORD.findall(low)) if w in _GROUP_OF_TERM}
    # Looked up word by word (a set of the words first cost more than the look-ups).
    return {_GROUP_OF_BYTES[w] for w in ascii_words(low) if w in _GROUP_OF_BYTES}


def demographic_groups(text: str) -> list[str]:
    """``family:group`` for every term group mentioned in ``text`` (e.g. ``gender:female``).

    Terms are whole words, case-insensitive: the text's words, looked up once each
    (one pass, whatever the number of terms)."""
    found = _groups_in(text.lower())
    if not found:
        return []
    return [f"{family}:{group}" for family, group in sorted(found, key=_ORDER.__getitem__)]


@dataclass(frozen=True)
class SegmentTest:
    """One segment against the rest of its attribute."""

    segment: str
    value: float  # the segment's rate or mean
    rest: float  # the rest's
    effect: float  # value - rest, or value / rest - 1 for relative outcomes
    size: int
    rest_size: int
    p_value: float


@dataclass(frozen=True)
class GroupComparison:
    """One outcome compared across the groups of one attribute."""

    values: dict[str, float]
    sizes: dict[str, int]
    gap: float
    ratio: float | None  # None where the outcome can be negative
    p_value: float | None  # omnibus
    segments: list[SegmentTest] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)

    @property
    def sample_size(self) -> int:
        return sum(self.sizes.values())

    @property
    def smallest(self) -> int:
        return min(self.sizes.values())


def _split(
    groups: Sequence[str], outcomes: ArrayLike, min_group: int
) -> tuple[dict[str, np.ndarray], list[str], np.ndarray, np.ndarray]:
    values = np.asarray(outcomes, dtype=float)
    labels = np.asarray(groups, dtype=object)
    keep = ~np.isnan(values)
    values, labels = values[keep], labels[keep]
    out: dict[str, np.ndarray] = {}
    excluded: list[str] = []
    for group in sorted(set(labels.tolist())):
        members = values[labels == group]
        (out.__setitem__(group, members) if len(members) >= min_group else excluded.append(group))
    return out, excluded, values, labels


def two_proportions(a: float, n1: int, b: float, n2: int) -> float:
    """p-value of a difference between a/n1 and b/n2: chi-square, or Fisher's exact test
    when an expected count is below 5."""
    from scipy.stats import chi2_contingency, fisher_exact

    table = np.array([[a, n1 - a], [b, n2 - b]])
    if (table.sum(axis=0) == 0).any():
        return 1.0  # nobody (or everybody) had the outcome: no evidence of a difference
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    if expected.min() < 5:
        return float(fisher_exact(table).pvalue)
    return float(chi2_contingency(table, correction=False).pvalue)


def _chi2(successes: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Pearson's chi-square of groups x {1, 0} tables; ``successes`` (..., groups)."""
    total = sizes.sum()
    column = successes.sum(axis=-1, keepdims=True)
    expected_1 = sizes * column / total
    expected_0 = sizes * (total - column) / total
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = (successes - expected_1) ** 2 / expected_1
        terms += ((sizes - successes) - expected_0) ** 2 / expected_0
    return np.nansum(terms, axis=-1)


def _omnibus_rates(split: dict[str, np.ndarray], rng: np.random.Generator) -> float:
    from scipy.stats import chi2_contingency

    table = np.array([[v.sum(), len(v) - v.sum()] for v in split.values()])
    if (table.sum(axis=0) == 0).any():
        return 1.0
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    if expected.min() >= 5:
        return float(chi2_contingency(table, correction=False).pvalue)
    # Small expected counts: the chi-square statistic's null by shuffling outcomes.
    sizes = np.array([len(v) for v in split.values()], dtype=float)
    observed = _chi2(table[:, 0].astype(float), sizes)
    pooled = np.concatenate(list(split.values()))
    order = np.argsort(rng.random((MONTE_CARLO, len(pooled))), axis=1)
    starts = np.r_[0, np.cumsum(sizes)[:-1]].astype(int)
    shuffled = np.add.reduceat(pooled[order], starts, axis=1)
    exceed = int(np.sum(_chi2(shuffled, sizes) >= observed - 1e-9))
    return (exceed + 1) / (MONTE_CARLO + 1)


def compare_rates(
    groups: Sequence[str], outcomes: ArrayLike, *, min_group: int = MIN_GROUP, seed: int = 0
) -> GroupComparison | None:
    """A 0/1 outcome per observation compared across groups; None with fewer than 2 groups."""
    split, excluded, values, labels = _split(groups, outcomes, min_group)
    if len(split) < 2:
        return None
    rates = {g: float(v.mean()) for g, v in split.items()}
    segments = []
    for group, members in split.items():
        rest = values[labels != group]
        p = two_proportions(members.sum(), len(members), rest.sum(), len(rest))
        rest_rate = float(rest.mean())
        segments.append(
            SegmentTest(
                group, rates[group], rest_rate, rates[group] - rest_rate, len(members), len(rest), p
            )
        )
    hi, lo = max(rates.values()), min(rates.values())
    return GroupComparison(
        rates,
        {g: len(v) for g, v in split.items()},
        hi - lo,
        lo / hi if hi > 0 else 1.0,
        _omnibus_rates(split, np.random.default_rng(seed)),
        segments,
        excluded,
    )


def _welch(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import ttest_ind

    if np.var(a) == 0 and np.var(b) == 0:
        return 1.0 if a.mean() == b.mean() else 0.0
    return float(ttest_ind(a, b, equal_var=False).pvalue)


def compare_means(
    groups: Sequence[str],
    values: ArrayLike,
    *,
    min_group: int = MIN_GROUP,
    relative: bool = False,
) -> GroupComparison | None:
    """A numeric outcome compared across groups; None with fewer than 2 groups.

    ``relative``: the outcome is non-negative (a length), so effects are relative
    (segment / rest - 1) and the four-fifths ratio is defined.
    """
    from scipy.stats import alexandergovern

    split, excluded, pooled, labels = _split(groups, values, min_group)
    if len(split) < 2:
        return None
    means = {g: float(v.mean()) for g, v in split.items()}
    segments = []
    for group, members in split.items():
        rest = pooled[labels != group]
        rest_mean = float(rest.mean())
        if relative:
            effect = means[group] / rest_mean - 1.0 if rest_mean > 0 else 0.0
        else:
            effect = means[group] - rest_mean
        p = _welch(members, rest)
        segments.append(
            SegmentTest(group, means[group], rest_mean, effect, len(members), len(rest), p)
        )
    hi, lo = max(means.values()), min(means.values())
    ratio = (lo / hi if hi > 0 else 1.0) if relative else None
    if all(np.var(v) == 0 for v in split.values()):
        p = 1.0 if hi == lo else 0.0
    else:
        p = float(alexandergovern(*split.values()).pvalue)
    return GroupComparison(
        means, {g: len(v) for g, v in split.items()}, hi - lo, ratio, p, segments, excluded
    )
