"""Filters that keep bad examples out of training: an empty, toxic or PII-bearing chosen side.

Training on a pair teaches the model to say its chosen side, so that is the
side we check. Each filter returns the reason it drops a pair; the join counts
drops by reason so an operator sees what was thrown away and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from llmloop import pii
from llmloop_retraining.pairs import Pair


def pii_kinds(text: str) -> list[str]:
    """PII that must not be taught to a model (the shared detector: precision first)."""
    return pii.kinds(text)


@cache
def _toxicity_model() -> Any:
    from profanity_check import predict_prob  # alt-profanity-check: the processor's model

    return predict_prob


def toxicity(texts: Sequence[str]) -> list[float]:
    """Probability that each text is toxic, by the model the processor scores answers with
    (alt-profanity-check): for the chosen side no service scored, a user's correction."""
    return [float(p) for p in _toxicity_model()(list(texts))] if texts else []


def drop_reasons(pairs: Sequence[Pair], toxicity_threshold: float = 0.8) -> list[str | None]:
    """For each pair, why it is dropped (``empty_chosen`` ...), or None to keep it."""
    unscored = [p.chosen for p in pairs if p.chosen_toxicity is None]
    own = iter(toxicity(unscored))
    scores = [next(own) if p.chosen_toxicity is None else p.chosen_toxicity for p in pairs]
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
