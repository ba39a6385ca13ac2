"""Rows a two-sample test may treat as exchangeable: duplicates and sessions collapsed.

A permutation test assumes that, with no drift, any row could have landed in
either window. Retries, templates and sessions break that: a pair of
near-identical prompts sits in one window, so the window looks tighter than any
shuffle of the pooled rows, and the test "finds" drift in pure noise (p < 0.05 in
every window pair, measured). So before a test, within each window:

1. rows of one session (else one user), where the app sent an id, count once;
2. rows with the same text (by hash) count once;
3. rows whose embeddings are closer than ``NEAR`` (cosine) to a row already
   kept count once: greedy, in a fixed order, so a window's result is
   reproducible.

The kept row of a group is the first in the window's fixed (event-id hash)
order. The test then says how many rows it kept, next to how many it saw.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

# Retries and light edits of one prompt are >= 0.98 apart on MiniLM (1st percentile,
# bench corpus), distinct templated prompts 0.86 at the median of nearest neighbours.
NEAR = 0.97


def first_of_each(keys: NDArray[np.generic] | list[object]) -> NDArray[np.intp]:
    """Positions of the first row of each key; rows whose key is empty or None stay."""
    seen: set[object] = set()
    keep: list[int] = []
    for i, key in enumerate(keys):
        if key is None or key == "" or key == 0:
            keep.append(i)
        elif key not in seen:
            seen.add(key)
            keep.append(i)
    return np.asarray(keep, dtype=np.intp)


def distinct_embeddings(vectors: NDArray[np.floating], near: float = NEAR) -> NDArray[np.intp]:
    """Positions of rows that are not within cosine ``near`` of an earlier kept row.

    Vectors are unit length (the embedder normalises), so cosine is a dot product.
    Quadratic in the window's rows, which the sample cap bounds (2,000: 16 MB).
    """
    n = len(vectors)
    if n == 0:
        return np.zeros(0, dtype=np.intp)
    sims = vectors @ vectors.T
    keep: list[int] = []
    dropped = np.zeros(n, dtype=bool)
    for i in range(n):
        if dropped[i]:
            continue
        keep.append(i)
        dropped |= sims[i] >= near
    return np.asarray(keep, dtype=np.intp)


def distinct_rows(
    text_hashes: NDArray[np.generic] | list[object], groups: NDArray[np.generic] | list[object]
) -> NDArray[np.intp]:
    """Positions of the first row of each session (or user), then of each text among them."""
    rows = np.arange(len(groups))[first_of_each(list(groups))]
    return rows[first_of_each([text_hashes[i] for i in rows])]


def collapse(
    vectors: NDArray[np.floating],
    text_hashes: NDArray[np.generic] | list[object],
    groups: NDArray[np.generic] | list[object],
    near: float = NEAR,
) -> NDArray[np.intp]:
    """Positions of the rows to test: one per session, per text and per near-duplicate."""
    rows = distinct_rows(text_hashes, groups)
    return rows[distinct_embeddings(vectors[rows], near)]
