"""The text features of a completion: sentiment, toxicity, refusal, PII kinds and
demographic terms, computed for every completion.

Plain functions over prompt and answer texts; the models they use (VADER's lexicon,
alt-profanity-check's linear model) ship with their wheels and load on first use.
``FeatureWorker`` runs them in a spawned process: this module imports neither the
event models nor Arrow, so that process holds only what the features need (issue 18).
The enrichment stage (``enrichment``) turns them into rows; embeddings come later,
for a sample, from the embedding stage (``embedding``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from llmloop import pii
from llmloop_processor.bias import demographic_groups
from llmloop_processor.sentiment import compound
from llmloop_processor.toxicity import model as toxicity_model

_REFUSAL = re.compile(
    r"^\W*(?:(?:i'?m|i am) (?:sorry|afraid)|sorry,|(?:i )?(?:can(?:no|')t|cannot|won'?t|"
    r"am unable to|'m unable to|am not able to)|as an ai\b|i must decline|unfortunately,? i)",
    re.IGNORECASE,
)
_REFUSAL_ANYWHERE = re.compile(
    r"\b(?:i can(?:no|')t (?:help|assist|provide|comply)|i(?:'m| am) unable to (?:help|assist|"
    r"provide|comply)|against (?:my|the) (?:guidelines|policy|policies))\b",
    re.IGNORECASE,
)


def is_refusal(text: str) -> bool:
    """Whether a completion declines the request (phrase rules, English)."""
    if _REFUSAL.search(text[:200]):
        return True
    head = text[:2000]
    # Every phrase _REFUSAL_ANYWHERE matches holds one of these words, lower-cased (in
    # ASCII text: elsewhere IGNORECASE also folds a dotless i, so the pattern always runs).
    if head.isascii():
        low = head.lower()
        if not ("i can" in low or "i'm unable" in low or "i am unable" in low or "against" in low):
            return False
    return bool(_REFUSAL_ANYWHERE.search(head))


def pii_flags(*texts: str) -> list[str]:
    """Kinds of personal data that look present in ``texts`` (never the values themselves)."""
    return pii.kinds(*texts)


def sentiment(texts: Sequence[str]) -> list[float]:
    """VADER compound score in [-1, 1] per text."""
    return [compound(t) for t in texts]


def toxicity(texts: Sequence[str]) -> list[float]:
    """Probability of profanity / abuse per text (alt-profanity-check's model)."""
    return toxicity_model()([t[:5000] for t in texts]) if texts else []


Features = dict[str, list[Any]]


def text_features(prompts: Sequence[str], outputs: Sequence[str]) -> Features:
    """The model-based features of completions, one list per ``completion_enrichments``
    column: prompt and completion sentiment and toxicity, refusal, PII kinds (of prompt
    and answer) and demographic groups (of the prompt). Pure CPU work on texts, so it can
    run in a worker process (``FeatureWorker``).

    A prompt's features are computed once per batch: prompts repeat (templates,
    evaluation sets, the same question asked again), answers rarely do."""
    distinct = list(dict.fromkeys(prompts))
    tox = toxicity(distinct + list(outputs))
    n = len(distinct)
    prompt_sentiment = dict(zip(distinct, sentiment(distinct), strict=True))
    prompt_toxicity = dict(zip(distinct, tox[:n], strict=True))
    groups = {p: demographic_groups(p) for p in distinct}
    return {
        "prompt_sentiment": [prompt_sentiment[p] for p in prompts],
        "completion_sentiment": sentiment(outputs),
        "prompt_toxicity": [prompt_toxicity[p] for p in prompts],
        "completion_toxicity": tox[n:],
        "refusal": [is_refusal(o) for o in outputs],
        "pii": [pii_flags(p, o) for p, o in zip(prompts, outputs, strict=True)],
        "demographics": [groups[p] for p in prompts],
    }


class FeatureWorker:
    """``text_features`` in one spawned worker process (issue 18).

    In ``llmloop up`` the API, the sink and the enricher share one interpreter:
    VADER, the PII and refusal rules and the toxicity model (about 1 ms per
    realistic completion) would hold its GIL for most of a second per thousand
    completions, and ingest latency would grow with traffic. In a worker they
    use the other core and the API keeps its own.
    """

    def __init__(self) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self._pool = ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn")
        )

    def __call__(self, prompts: Sequence[str], outputs: Sequence[str]) -> Features:
        return self._pool.submit(text_features, list(prompts), list(outputs)).result()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
