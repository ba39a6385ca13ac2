"""Processor throughput, batched, one process: the sink, enrichment without and with
embeddings, and the process's RSS with the model loaded.

Each stage runs on a fresh chDB store in a temporary directory, on batches of
--batch events, through the same writers the consumers call (parse -> rows ->
dedup look-up -> Arrow insert). Each stage's figure includes parsing its events;
"sink + enrichment" parses once and runs both, as ``llmloop up`` does (its edge
validates each event once). A stage's first batch warms its store up and is not
counted (a running service's first batch is one among millions), and the
collector is tuned as the services tune it once started (``lifecycle.tune_gc``).
Figures are medians of --runs runs.

    .venv/bin/python bench/processor.py [--events 20000] [--batch 5000] [--runs 3]

Goals (issue 4): >= 20,000 events/s per core without embeddings; RSS < 1.5 GiB
with the model loaded (DESIGN.md).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--embedded-events", type=int, default=400)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from llmloop.events import CompletionLogged, encode_event, parse_event
    from llmloop.lifecycle import tune_gc
    from llmloop.store import open_store
    from llmloop.store.migrate import migrate
    from llmloop.testing.corpus import prompts
    from llmloop_processor import sentiment
    from llmloop_processor.embed import Embedder, Sampler
    from llmloop_processor.embedding import EmbeddingWriter
    from llmloop_processor.enrichment import Enricher, EnrichmentWriter
    from llmloop_processor.writer import StoreWriter

    texts = prompts("cooking", args.events, 1)
    base = datetime.now(UTC) - timedelta(hours=2)

    def wire(n: int, run: int) -> list[bytes]:
        return [
            encode_event(
                CompletionLogged(
                    model="gpt-4o-mini",
                    project_id="bench",
                    prompt=f"{texts[i % len(texts)]} #{run}",
                    # Distinct completions: no feature cache flatters the figure.
                    completion=f"Sure. Preheat the oven to {150 + i % 100} C, roast {i} minutes.",
                    latency_ms=250.0,
                    attributes={"locale": "en-US"},
                    timestamp=base + timedelta(milliseconds=i),
                )
            )
            for i in range(n)
        ]

    def rate(stage: str, n: int, run: int, handle) -> float:  # type: ignore[no-untyped-def]
        sentiment.clear_cache()  # each stage scores its texts afresh (they repeat by run)
        with tempfile.TemporaryDirectory() as tmp:
            store = open_store(f"chdb:///{tmp}/chdb")
            migrate(store)
            warm = min(n, args.batch)
            messages = wire(warm + n, run)
            handle(store, [parse_event(m) for m in messages[:warm]])
            # CPU seconds of this process (every thread: chDB's too): events per second of
            # one core, which other work on the machine does not change as it does wall time.
            t = time.process_time()
            for i in range(warm, warm + n, args.batch):
                events = [parse_event(m) for m in messages[i : i + args.batch]]
                handle(store, events)
            elapsed = time.process_time() - t
            store.close()
        return n / elapsed

    def sink(store, events):  # type: ignore[no-untyped-def]
        StoreWriter(store).write(events)

    plain = Enricher(None)

    def enrich(store, events):  # type: ignore[no-untyped-def]
        EnrichmentWriter(store, plain).write(events)

    embedder = Embedder()
    embedder.load()
    sampled = Enricher(Sampler(1.0))

    def enrich_embed(store, events):  # type: ignore[no-untyped-def]
        # Scalar rows, then the embedding stage's vectors (issue 18), every completion.
        EnrichmentWriter(store, sampled).write(events)
        stage = EmbeddingWriter(store, embedder, Sampler(1.0))
        stage.write(events, stage.decisions(events))

    def sink_and_enrich(store, events):  # type: ignore[no-untyped-def]
        # As `llmloop up` runs them: the event parsed once (at the edge), then both.
        sink(store, events)
        enrich(store, events)

    tune_gc()  # as a service does once started: the start-up heap frozen
    results: dict[str, list[float]] = {
        "sink": [], "enrich": [], "enrich_embed": [], "both": [], "parse": []
    }  # fmt: skip
    for run in range(args.runs):
        results["sink"].append(rate("sink", args.events, run, sink))
        results["enrich"].append(rate("enrich", args.events, run, enrich))
        results["enrich_embed"].append(rate("embed", args.embedded_events, run, enrich_embed))
        results["both"].append(rate("both", args.events, run, sink_and_enrich))
        results["parse"].append(rate("parse", args.events, run, lambda store, events: None))
    med = {k: statistics.median(v) for k, v in results.items()}
    best = {k: max(v) for k, v in results.items()}  # a shared machine only ever slows a run
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"processor, one process, batches of {args.batch:,}, median of {args.runs} runs, "
        "events per CPU-second (all threads):"
    )
    print(f"  sink (parse, dedup look-up, insert)            {med['sink']:9,.0f} events/s")
    print(f"  enrichment without embeddings                  {med['enrich']:9,.0f} events/s")
    print(
        f"  enrichment + embeddings (every completion)     {med['enrich_embed']:9,.0f} events/s "
        f"({embedder.name})"
    )
    print(f"  parse and validate only                        {med['parse']:9,.0f} events/s")
    print(
        f"  sink + enrichment, no embeddings, parsed once  {med['both']:9,.0f} events/s "
        f"(best run {best['both']:,.0f}; goal >= 20,000 per core)"
    )
    print(f"  peak RSS with the model loaded                 {rss:9,.0f} MiB (goal < 1,536)")


if __name__ == "__main__":
    main()
