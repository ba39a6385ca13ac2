-- Every completion an app logged. One row per event_id: ReplacingMergeTree on a key
-- that ends in event_id, and the writer skips ids already stored, so a redelivered
-- event never counts twice. Missing optional strings are '' (ClickHouse idiom);
-- missing numbers are NULL, because "unknown" is not 0.
CREATE TABLE IF NOT EXISTS completions
(
    event_id UUID,
    project_id LowCardinality(String),
    ts DateTime64(3, 'UTC'),
    trace_id String,
    parent_id String,
    model LowCardinality(String),
    model_version LowCardinality(String),
    prompt_template LowCardinality(String),
    prompt_version LowCardinality(String),
    prompt_format LowCardinality(String) COMMENT 'text, or chat: prompt holds the messages as JSON',
    prompt String CODEC(ZSTD(3)),
    completion String CODEC(ZSTD(3)),
    prompt_tokens Nullable(UInt32),
    completion_tokens Nullable(UInt32),
    latency_ms Nullable(Float64),
    cost_usd Nullable(Float64),
    user_id String,
    session_id String,
    attributes Map(LowCardinality(String), String),
    tags Array(LowCardinality(String)),
    metadata String CODEC(ZSTD(3)) COMMENT 'JSON object',
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_event_id event_id TYPE bloom_filter GRANULARITY 4,
    INDEX idx_trace_id trace_id TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (project_id, model, ts, event_id)
TTL toDateTime(ts) + INTERVAL 400 DAY;
