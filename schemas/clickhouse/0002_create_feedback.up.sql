-- Feedback on completions, every kind in one table: value holds thumbs (+1/-1)
-- or the score; correction and preference columns are filled for their kinds.
CREATE TABLE IF NOT EXISTS feedback
(
    event_id UUID,
    project_id LowCardinality(String),
    ts DateTime64(3, 'UTC'),
    completion_id UUID,
    kind LowCardinality(String),
    source LowCardinality(String),
    value Nullable(Float64),
    scale_min Nullable(Float64),
    scale_max Nullable(Float64),
    comment String CODEC(ZSTD(3)),
    correction String CODEC(ZSTD(3)),
    chosen_id Nullable(UUID),
    rejected_id Nullable(UUID),
    user_id String,
    metadata String CODEC(ZSTD(3)) COMMENT 'JSON object',
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_event_id event_id TYPE bloom_filter GRANULARITY 4,
    INDEX idx_completion_id completion_id TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (project_id, kind, ts, event_id)
TTL toDateTime(ts) + INTERVAL 400 DAY;
