"""Real MiniLM embeddings of a fixed synthetic corpus, computed once per session."""

from __future__ import annotations

import numpy as np
import pytest

from llmloop.testing.corpus import prompts
from llmloop_processor.embed import Embedder


@pytest.fixture(scope="session")
def topic_embeddings(embedder: Embedder) -> dict[str, np.ndarray]:
    """Unit-length MiniLM embeddings: 1,200 cooking prompts and 500 programming prompts."""
    return {
        "cooking": embedder.encode(prompts("cooking", 1_200, seed=1)),
        "programming": embedder.encode(prompts("programming", 500, seed=2)),
    }
