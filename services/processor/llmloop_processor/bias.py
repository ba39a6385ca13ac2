"""Bias statistics: outcome rates and means per group, their gap, ratio and significance.

Groups come from a completion's ``attributes`` (one segment attribute at a
time, e.g. ``locale``) or from demographic terms found in its prompt (one term
family at a time, e.g. ``gender``). For each outcome:

* rates (negative feedback, toxic, refusal): per-group rate, gap = max - min,
  ratio = min / max (the four-fifths rule reads ratio < 0.8), and the p-value of
  a chi-square test of independence on the groups x {0, 1} table;
* means (sentiment, length): per-group mean, gap, ratio of the smallest to the
  largest absolute mean, and a Kruskal-Wallis p-value (no normality assumed).

Groups with fewer than ``min_group`` observations are left out: a rate of 1/1
is noise, not bias.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

MIN_GROUP = 20

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
_PATTERNS = {
    family: {
        group: re.compile(r"\b(?:" + "|".join(map(re.escape, words)) + r")\b", re.IGNORECASE)
        for group, words in groups.items()
    }
    for family, groups in DEMOGRAPHIC_TERMS.items()
}


def demographic_groups(text: str) -> list[str]:
    """``family:group`` for every term group mentioned in ``text`` (e.g. ``gender:female``)."""
    return [
        f"{family}:{group}"
        for family, groups in _PATTERNS.items()
        for group, pattern in groups.items()
        if pattern.search(text)
    ]


@dataclass(frozen=True)
class GroupComparison:
    """One outcome compared across the groups of one attribute."""

    values: dict[str, float]
    sizes: dict[str, int]
    gap: float
    ratio: float
    p_value: float | None
    excluded: list[str] = field(default_factory=list)

    @property
    def sample_size(self) -> int:
        return sum(self.sizes.values())


def _split(
    groups: Sequence[str], outcomes: ArrayLike, min_group: int
) -> tuple[dict[str, np.ndarray], list[str]]:
    values = np.asarray(outcomes, dtype=float)
    labels = np.asarray(groups, dtype=object)
    keep = ~np.isnan(values)
    out: dict[str, np.ndarray] = {}
    excluded: list[str] = []
    for group in sorted(set(labels[keep].tolist())):
        members = values[keep & (labels == group)]
        (out.__setitem__(group, members) if len(members) >= min_group else excluded.append(group))
    return out, excluded


def _gap_ratio(stats: dict[str, float]) -> tuple[float, float]:
    hi, lo = max(stats.values()), min(stats.values())
    return hi - lo, (lo / hi) if hi > 0 else 1.0


def compare_rates(
    groups: Sequence[str], outcomes: ArrayLike, *, min_group: int = MIN_GROUP
) -> GroupComparison | None:
    """A 0/1 outcome per observation compared across groups; None with fewer than 2 groups."""
    from scipy.stats import chi2_contingency

    split, excluded = _split(groups, outcomes, min_group)
    if len(split) < 2:
        return None
    rates = {g: float(v.mean()) for g, v in split.items()}
    gap, ratio = _gap_ratio(rates)
    table = np.array([[v.sum(), len(v) - v.sum()] for v in split.values()])
    # A column of zeros (nobody, or everybody, had the outcome) means no evidence of a gap.
    p = (
        1.0
        if (table.sum(axis=0) == 0).any()
        else float(chi2_contingency(table, correction=False).pvalue)
    )
    return GroupComparison(rates, {g: len(v) for g, v in split.items()}, gap, ratio, p, excluded)


def compare_means(
    groups: Sequence[str], values: ArrayLike, *, min_group: int = MIN_GROUP
) -> GroupComparison | None:
    """A numeric outcome compared across groups (Kruskal-Wallis); None with fewer than 2 groups."""
    from scipy.stats import kruskal

    split, excluded = _split(groups, values, min_group)
    if len(split) < 2:
        return None
    means = {g: float(v.mean()) for g, v in split.items()}
    gap = max(means.values()) - min(means.values())
    mags = [abs(m) for m in means.values()]
    ratio = min(mags) / max(mags) if max(mags) > 0 else 1.0
    pooled = np.concatenate(list(split.values()))
    p = 1.0 if np.all(pooled == pooled[0]) else float(kruskal(*split.values()).pvalue)
    return GroupComparison(means, {g: len(v) for g, v in split.items()}, gap, ratio, p, excluded)
