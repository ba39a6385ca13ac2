"""Collapsing rows that are not exchangeable: sessions, same texts, near-duplicates."""

from __future__ import annotations

import numpy as np

from llmloop_processor.exchangeable import collapse, distinct_embeddings, first_of_each


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_first_of_each_keeps_rows_without_a_key():
    assert first_of_each(["s:1", "", "s:1", "s:2", "", "s:2"]).tolist() == [0, 1, 3, 4]
    assert first_of_each([5, 0, 5, 7]).tolist() == [0, 1, 3]


def test_near_duplicates_count_once_and_distinct_rows_stay():
    rng = np.random.default_rng(0)
    base = unit(rng.normal(size=(50, 32)))
    copies = unit(base + 0.01 * rng.normal(size=base.shape))  # cosine ~0.999
    both = np.vstack([base, copies])
    assert len(distinct_embeddings(both)) == 50
    assert len(distinct_embeddings(base)) == 50  # random directions are far apart


def test_collapse_applies_sessions_then_texts_then_embeddings():
    rng = np.random.default_rng(1)
    vectors = unit(rng.normal(size=(6, 16)))
    vectors[5] = vectors[4]  # a retry: same vector, different hash (an edited text)
    hashes = [1, 2, 2, 3, 4, 5]
    groups = ["s:a", "s:a", "", "", "", ""]
    # row 1 is row 0's session; row 2 repeats row 1's text but row 1 is gone: it stays;
    # row 5 is row 4's near-duplicate.
    assert collapse(vectors, hashes, groups).tolist() == [0, 2, 3, 4]


def test_real_retries_collapse_on_minilm(embedder):
    """The threshold separates retries (>= 0.98 on fp32 MiniLM) from different questions
    (~0.86): nearly every retry collapses onto its question, no question onto another."""
    import random

    from llmloop.testing.corpus import near_duplicate, question

    rng = random.Random(3)
    asked = list(dict.fromkeys(question("support", rng)[0] for _ in range(60)))
    retried = [near_duplicate(q, rng) for q in asked]
    vectors = embedder.encode(asked + retried)
    kept = distinct_embeddings(vectors)
    assert len(asked) * 0.9 <= len(kept) <= len(asked) * 1.1
