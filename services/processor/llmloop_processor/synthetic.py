"""Enriched rows written straight into a store, for many keys at once: what the
statistics timer reads, without running the enricher and the embedder first.

For ``bench/stats_scale.py`` and the sharding tests, which measure and check how the
timer's work splits over keys and replicas, not what the features mean (that is
``simulate``'s business). Vectors are random unit vectors quantised like the real ones.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa

from llmloop.store import Store
from llmloop_processor.embed import DIM
from llmloop_processor.embedding import SCHEMA as EMBEDDING_SCHEMA
from llmloop_processor.enrichment import SCALAR_SCHEMA, int8_lists

Key = tuple[str, str, str]


def keys(n: int) -> list[Key]:
    """``n`` distinct (project, model, prompt_version) keys over a few projects."""
    return [(f"p{i % 7}", f"model-{i}", f"v{i % 3}") for i in range(n)]


def write(
    store: Store,
    key_list: Sequence[Key],
    per_key: int,
    start: datetime,
    end: datetime,
    *,
    seed: int = 0,
) -> int:
    """``per_key`` enriched and embedded completions per key, spread over [start, end)."""
    rng = np.random.default_rng(seed)
    n = len(key_list) * per_key
    span_ms = (end - start) / timedelta(milliseconds=1)
    ts = [start + timedelta(milliseconds=float(x)) for x in rng.uniform(0, span_ms - 1, n)]
    ids = [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(n)]
    owner = [key for key in key_list for _ in range(per_key)]
    scalars = {
        "event_id": ids,
        "project_id": [k[0] for k in owner],
        "ts": ts,
        "model": [k[1] for k in owner],
        "model_version": [""] * n,
        "prompt_version": [k[2] for k in owner],
        "attributes": [[("locale", ("de-DE", "en-US")[i % 2])] for i in range(n)],
        "prompt_chars": rng.integers(20, 400, n).astype(np.uint32),
        "completion_chars": rng.integers(20, 2_000, n).astype(np.uint32),
        "prompt_tokens": rng.integers(5, 100, n).astype(np.uint32),
        "completion_tokens": rng.integers(5, 500, n).astype(np.uint32),
        "tokens_estimated": [False] * n,
        "latency_ms": rng.uniform(100, 900, n),
        "cost_usd": rng.uniform(0, 0.01, n),
        "cost_source": ["event"] * n,
        "prompt_sentiment": rng.uniform(-1, 1, n).astype(np.float32),
        "completion_sentiment": rng.uniform(-1, 1, n).astype(np.float32),
        "prompt_toxicity": rng.uniform(0, 0.1, n).astype(np.float32),
        "completion_toxicity": rng.uniform(0, 0.1, n).astype(np.float32),
        "toxic": [False] * n,
        "refusal": (rng.random(n) < 0.05).tolist(),
        "pii": [[] for _ in range(n)],
        "demographics": [[] for _ in range(n)],
        "embedding_sample_rate": np.ones(n, dtype=np.float32),
        "embedded": [False] * n,
        "embedding_state": ["sampled"] * n,
    }
    store.insert("completion_enrichments", pa.table(scalars, schema=SCALAR_SCHEMA))
    embeddings = pa.table(
        {
            "event_id": ids,
            "project_id": scalars["project_id"],
            "ts": ts,
            "model": scalars["model"],
            "prompt_version": scalars["prompt_version"],
            "embedding_sample_rate": scalars["embedding_sample_rate"],
            "embedder": ["synthetic"] * n,
        },
        schema=EMBEDDING_SCHEMA,
    )
    for field in ("prompt_embedding", "completion_embedding"):
        embeddings = embeddings.append_column(field, int8_lists(_vectors(rng, n)))
    store.insert("completion_embeddings", embeddings)
    return n


def _vectors(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return list(np.round(v * 127).astype(np.int8))
