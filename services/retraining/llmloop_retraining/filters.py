"""Filters that keep bad examples out of training: an empty, toxic or PII-bearing chosen side.

Training on a pair teaches the model to say its chosen side, so that is the
side we check. Each filter returns the reason it drops a pair; the join counts
drops by reason so an operator sees what was thrown away and why.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from functools import lru_cache

from llmloop import pii
from llmloop_retraining.pairs import Pair

log = logging.getLogger(__name__)

# Used only when alt-profanity-check (the processor's toxicity model) is absent.
_FALLBACK_WORDS = frozenset(
    [
        "fuck",
        "fucking",
        "shit",
        "bitch",
        "bastard",
        "asshole",
        "idiot",
        "stupid",
        "moron",
        "retard",
        "cunt",
        "dick",
    ]
)


def pii_kinds(text: str) -> list[str]:
    """PII that must not be taught to a model (the shared detector: precision first)."""
    return pii.kinds(text)


@lru_cache(maxsize=1)
def _toxicity_model() -> Callable[[Sequence[str]], Sequence[float]] | None:
    try:
        from profanity_check import predict_prob
    except ImportError:
        log.warning("alt-profanity-check is not installed: toxicity filter uses a word list")
        return None
    return predict_prob  # type: ignore[no-any-return]


def toxicity(texts: Sequence[str]) -> list[float]:
    """Probability that each text is toxic (alt-profanity-check's linear model)."""
    model = _toxicity_model()
    if model is None:
        return [
            1.0 if _FALLBACK_WORDS.intersection(re.findall(r"[a-z]+", t.lower())) else 0.0
            for t in texts
        ]
    return [float(p) for p in model(list(texts))] if texts else []


def drop_reasons(pairs: Sequence[Pair], toxicity_threshold: float = 0.8) -> list[str | None]:
    """For each pair, why it is dropped (``empty_chosen`` ...), or None to keep it."""
    scores = toxicity([p.chosen for p in pairs])
    reasons: list[str | None] = []
    for pair, score in zip(pairs, scores, strict=True):
        if not pair.chosen.strip():
            reasons.append("empty_chosen")
        elif pair.chosen.strip() == pair.rejected.strip():
            reasons.append("identical")
        elif score >= toxicity_threshold:
            reasons.append("toxic_chosen")
        elif pii_kinds(pair.chosen):
            reasons.append("pii_chosen")
        else:
            reasons.append(None)
    return reasons
