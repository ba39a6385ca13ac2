-- Embeddings of the completions in the embedding sample (issue 18), written by the
-- embedding stage after their scalar row in completion_enrichments, which never
-- waits for them. One row per event_id (ReplacingMergeTree keyed on it; the
-- stage skips ids already here), so a redelivered event is embedded once.
-- Vectors are L2-normalised MiniLM embeddings quantised to Int8 (x127), as in
-- completion_enrichments; `embedder` names the path and token budget that made
-- them (e.g. onnx-int8/256), so a drift metric never mixes two embedders unseen.
CREATE TABLE IF NOT EXISTS completion_embeddings
(
    event_id UUID,
    project_id LowCardinality(String),
    ts DateTime64(3, 'UTC'),
    model LowCardinality(String),
    prompt_version LowCardinality(String),
    embedding_sample_rate Float32 COMMENT 'the sample rate this completion was chosen at',
    embedder LowCardinality(String) COMMENT 'backend and token budget, e.g. onnx-int8/256',
    prompt_embedding Array(Int8) CODEC(ZSTD(3)),
    completion_embedding Array(Int8) CODEC(ZSTD(3)),
    embedded_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_event_id event_id TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree(embedded_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (project_id, model, prompt_version, ts, event_id)
TTL toDateTime(ts) + INTERVAL 400 DAY;
