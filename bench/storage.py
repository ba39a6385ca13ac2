"""Bytes on disk per enriched completion in chDB, projected to 1M events.

Inserts --rows enrichment rows whose embeddings are real MiniLM vectors (of
distinct prompts and completions, perturbed per row so no two rows repeat,
which would flatter compression), then reads ``system.parts`` after OPTIMIZE.

    .venv/bin/python bench/storage.py [--rows 50000]

Goal (issue 4): 1M events with embeddings in well under 1 GB.
"""

from __future__ import annotations

import argparse
import tempfile
import uuid
from datetime import UTC, datetime, timedelta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    args = parser.parse_args()

    import numpy as np
    import pyarrow as pa

    from llmloop.store import open_store
    from llmloop.store.migrate import migrate
    from llmloop.testing.corpus import prompts
    from llmloop_processor.embed import Embedder, quantize
    from llmloop_processor.enrichment import SCALAR_SCHEMA, int8_lists

    texts = list(dict.fromkeys(prompts("cooking", 3_000, 1) + prompts("programming", 3_000, 2)))
    base = Embedder().encode(texts[:1_000])
    rng = np.random.default_rng(0)

    def vectors(n: int) -> np.ndarray:
        v = base[rng.integers(0, len(base), n)] + rng.normal(0, 0.02, (n, base.shape[1]))
        return quantize(v / np.linalg.norm(v, axis=1, keepdims=True))

    start = datetime.now(UTC) - timedelta(days=1)
    rows = [
        {
            "event_id": str(uuid.uuid4()),
            "project_id": "bench",
            "ts": start + timedelta(milliseconds=37 * i),
            "model": "gpt-4o-mini",
            "model_version": "2024-07-18",
            "prompt_version": f"v{i % 3}",
            "attributes": [("locale", ["en-US", "de-DE", "fr-FR"][i % 3]), ("plan", "pro")],
            "prompt_chars": 40 + i % 200,
            "completion_chars": 300 + i % 900,
            "prompt_tokens": 10 + i % 50,
            "completion_tokens": 75 + i % 225,
            "tokens_estimated": False,
            "latency_ms": float(rng.gamma(2, 300)),
            "cost_usd": float(rng.random() / 1000),
            "cost_source": "price_table",
            "prompt_sentiment": float(rng.uniform(-1, 1)),
            "completion_sentiment": float(rng.uniform(-1, 1)),
            "prompt_toxicity": float(rng.random() / 10),
            "completion_toxicity": float(rng.random() / 10),
            "toxic": False,
            "refusal": i % 17 == 0,
            "pii": [],
            "demographics": [],
            "embedding_sample_rate": 1.0,
            "embedded": True,
        }
        for i in range(args.rows)
    ]
    table = pa.Table.from_pylist(rows, schema=SCALAR_SCHEMA)
    table = table.append_column("prompt_embedding", int8_lists(list(vectors(args.rows))))
    table = table.append_column("completion_embedding", int8_lists(list(vectors(args.rows))))
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"chdb:///{tmp}/chdb")
        migrate(store)
        store.insert("completion_enrichments", table)
        store.command("OPTIMIZE TABLE completion_enrichments FINAL")
        result = store.query(
            "SELECT column, sum(column_data_compressed_bytes), sum(column_data_uncompressed_bytes) "
            "FROM system.parts_columns WHERE table = 'completion_enrichments' AND active "
            "GROUP BY column ORDER BY 2 DESC"
        ).rows
        store.close()
    total = sum(r[1] for r in result)
    emb = sum(r[1] for r in result if r[0].endswith("_embedding"))
    print(f"{args.rows:,} enriched completions (two 384-d Int8 embeddings each) in chDB:")
    print(
        f"  {total / args.rows:,.0f} bytes per row on disk, of which embeddings "
        f"{emb / args.rows:,.0f} (raw Int8: 768; float32 would be 3,072)"
    )
    print(
        f"  projected for 1M events: {total / args.rows * 1e6 / 2**20:,.0f} MiB "
        f"(goal: well under 1 GB)"
    )


if __name__ == "__main__":
    main()
