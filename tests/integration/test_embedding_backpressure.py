"""When embeddings cannot keep up: the sample shrinks, scalar enrichment stays current.

Real parts: the memory bus, chDB, the sink, the enricher, the embedding stage and
the adaptive sampler; the embedder is deliberately slow (40 completions/s of
model time) and returns fixed-per-text unit vectors, so the test is about flow,
not about MiniLM. 4,800 completions arrive at ~600/s, 15x what it can embed.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from datetime import UTC, datetime, timedelta

import numpy as np

from llmloop import topics
from llmloop.bus import Record, open_bus
from llmloop.events import CompletionLogged, encode_event
from llmloop.store import Store
from llmloop_processor import progress, windows
from llmloop_processor.embed import Embedder
from llmloop_processor.embedding import EmbeddingService, EmbeddingWriter
from llmloop_processor.enrichment import Enricher, EnrichmentService, EnrichmentWriter
from llmloop_processor.metric_sink import MetricSink
from llmloop_processor.sampling import AdaptiveSampler
from llmloop_processor.sink import Sink
from llmloop_processor.stats import Tests, drift_metrics

SECONDS_PER_COMPLETION = 0.025  # prompt + completion: 40 completions/s


class SlowEmbedder(Embedder):
    """Unit vectors from each text's hash, at a fixed cost per text."""

    def encode(self, texts):  # type: ignore[no-untyped-def]
        time.sleep(SECONDS_PER_COMPLETION / 2 * len(texts))
        out = np.empty((len(texts), 384), dtype=np.float32)
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")
            v = np.random.default_rng(seed).standard_normal(384).astype(np.float32)
            out[i] = v / np.linalg.norm(v)
        return out

    @property
    def name(self) -> str:
        return "slow/256"


def completion(i: int, when: datetime) -> CompletionLogged:
    return CompletionLogged(
        project_id="shop",
        model=("gpt-4o-mini", "house-model")[i % 2],
        prompt_version="v1",
        prompt=f"question {i}: how do I roast root vegetables for a large group?",
        completion=f"answer {i}: toss them in oil, spread them out and roast at 220 C.",
        timestamp=when,
    )


async def test_slow_embeddings_shrink_the_sample_not_the_enrichment(store: Store) -> None:
    bus = open_bus("memory://")
    await bus.start()
    sampler = AdaptiveSampler(capacity_hint_per_s=20.0, replan_s=1.0, window_s=300.0)
    embedder = SlowEmbedder(in_process=True)
    stage = EmbeddingService(bus, EmbeddingWriter(store, embedder, sampler), batch_size=256)
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(Sink(bus, store, max_wait_s=0.1).run(stop)),
        asyncio.create_task(
            EnrichmentService(bus, EnrichmentWriter(store, Enricher(sampler)), max_wait_s=0.1).run(
                stop
            )
        ),
        asyncio.create_task(stage.run(stop)),
    ]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    sent, lag, published = 0, [], []
    try:
        for tick in range(48):  # 100 completions every 0.17 s, ~600/s for 8 s
            batch = [completion(sent + i, datetime.now(UTC)) for i in range(100)]
            await bus.publish(
                topics.EVENTS, [Record(key=e.key(), value=encode_event(e)) for e in batch]
            )
            sent += len(batch)
            published += batch
            await asyncio.sleep(0.17)
            if tick % 5 == 4:
                enriched = store.query("SELECT count() FROM completion_enrichments").scalar()
                lag.append(sent - enriched)
        end = datetime.now(UTC) + timedelta(seconds=1)
        # Scalar enrichment is current: every completion within seconds of the last one.
        for _ in range(100):
            if store.query("SELECT count() FROM completion_enrichments").scalar() == sent:
                break
            await asyncio.sleep(0.1)
        assert store.query("SELECT count() FROM completion_enrichments").scalar() == sent
        assert max(lag[1:]) < 1_000, lag  # it never fell behind by more than ~1.5 s of traffic
        # ... while embeddings are behind, and the statistics can tell.
        states = dict(
            store.query(
                "SELECT embedding_state, count() FROM completion_enrichments GROUP BY 1"
            ).rows
        )
        assert set(states) == {"sampled", "not_sampled"}
        assert states["sampled"] < sent / 5  # the sample shrank to what can be embedded
        rates = store.query(
            "SELECT min(embedding_sample_rate), max(embedding_sample_rate) "
            "FROM completion_enrichments"
        ).rows[0]
        assert rates[0] < 0.1 and rates[1] == 1.0  # started at 1, dropped with the load
        key = ("shop", "gpt-4o-mini", "v1")
        early = progress.window_progress(store, start, end)[key]
        assert early.enrichment_caught_up and early.completions == sent // 2
        # Wait for the embedding stage to drain its (bounded) backlog.
        for _ in range(300):
            if progress.caught_up(store, start, end):
                break
            await asyncio.sleep(0.1)
        assert progress.caught_up(store, start, end)
        final = progress.window_progress(store, start, end)
        sample = progress.embedded_sample(store, start, end)
        assert sample == {k: p.sampled for k, p in final.items()}
        # The need (200 per 5 minutes per key) is met, and the spare capacity used.
        assert min(sample.values()) >= 20
        assert final[key].min_rate == rates[0] or final[key].min_rate < 0.1
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await bus.close()
    # Redelivery: the embedding stage run again over every event embeds nothing twice.
    again = EmbeddingWriter(store, embedder, sampler)
    assert again.write(published, again.decisions(published)) == 0
    assert (
        store.query("SELECT count() = uniqExact(event_id) FROM completion_embeddings").scalar() == 1
    )
    # A window capped below its size keeps the whole embedded sample, and drift
    # reports that size.
    cur = windows.current(store, key, start, end, cap=1_000)
    assert cur.size == 1_000 and len(cur.prompt_embeddings) == sample[key]
    out = MetricSink({"project": key[0], "model": key[1], "prompt_version": key[2]}, start, end)
    drift_metrics(out, cur, cur, reference="first_n", tests=Tests(permutations=20), seed=1)
    mmd = [m for m in out.metrics if m.name == "drift_embedding_mmd"]
    # rows_total: the embedded sample; sample_size: what was left after collapsing repeats.
    assert mmd and mmd[0].rows_total == sample[key] >= mmd[0].sample_size
    assert not progress.window_progress(store, end, end + timedelta(minutes=5))
