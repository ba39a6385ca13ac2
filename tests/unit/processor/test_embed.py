"""Embedding: Int8 storage keeps cosine, the cache embeds each text once, sampling is stable."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from llmloop_processor.embed import Embedder, Sampler, dequantize, quantize


def test_int8_codes_keep_cosine_above_0_998(topic_embeddings) -> None:
    x = topic_embeddings["cooking"][:200]
    back = dequantize(quantize(x))
    cos = np.sum(x * back, axis=1) / np.linalg.norm(back, axis=1)
    assert cos.min() > 0.998 and cos.mean() > 0.9985
    assert quantize(x).dtype == np.int8


def test_cache_embeds_each_distinct_text_once(embedder: Embedder) -> None:
    fresh = Embedder()
    fresh._model = embedder.load()  # share the loaded weights, not the cache
    texts = ["a cached text", "another one", "a cached text"]
    first = fresh.encode(texts)
    assert fresh.misses == 2 and fresh.hits == 0
    again = fresh.encode(texts[:1])
    assert fresh.hits == 1
    np.testing.assert_allclose(first[0], first[2])
    np.testing.assert_allclose(again[0], first[0])
    assert abs(float(np.linalg.norm(first[1])) - 1.0) < 1e-5


def test_sampler_is_deterministic_per_event_and_rate_per_model() -> None:
    sampler = Sampler(0.5, {"big-model": 0.1, "p1/special": 1.0})
    ids = [uuid.UUID(int=i * 0x9E3779B97F4A7C15_9E3779B97F4A7C15 % 2**128) for i in range(4000)]
    kept = [sampler.keep(i, "p0", "big-model") for i in ids]
    assert kept == [sampler.keep(i, "p0", "big-model") for i in ids]  # redelivery: same answer
    assert 0.07 < sum(kept) / len(ids) < 0.13
    assert 0.45 < sum(sampler.keep(i, "p0", "other") for i in ids) / len(ids) < 0.55
    assert all(sampler.keep(i, "p1", "special") for i in ids[:100])
    with pytest.raises(ValueError, match="sample rate"):
        Sampler(1.5)
