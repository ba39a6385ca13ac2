"""Feedback statistics: thumbs-up rate, mean score, correction rate, over one window."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


@dataclass(frozen=True)
class Stat:
    value: float
    sample_size: int


def thumbs_up_rate(values: ArrayLike) -> Stat | None:
    """Share of +1 among thumbs (+1 / -1); None without any thumbs."""
    v = np.asarray(values, dtype=float)
    return None if v.size == 0 else Stat(float(np.mean(v > 0)), int(v.size))


def mean_score(values: ArrayLike, lows: ArrayLike, highs: ArrayLike) -> Stat | None:
    """Mean score rescaled to [0, 1] by each score's own scale, so 1-5 stars and 0-1 mix."""
    v, lo, hi = (np.asarray(a, dtype=float) for a in (values, lows, highs))
    if v.size == 0:
        return None
    return Stat(float(np.mean((v - lo) / (hi - lo))), int(v.size))


def correction_rate(corrections: int, completions: int) -> Stat | None:
    """Corrections per completion in the window; None without completions."""
    return None if completions == 0 else Stat(corrections / completions, completions)
