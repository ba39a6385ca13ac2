-- Windowed statistics (drift, bias, feedback rates) published by the processor.
CREATE TABLE IF NOT EXISTS metrics
(
    event_id UUID,
    project_id LowCardinality(String),
    ts DateTime64(3, 'UTC'),
    name LowCardinality(String),
    value Float64,
    labels Map(LowCardinality(String), String),
    window_start DateTime64(3, 'UTC'),
    window_end DateTime64(3, 'UTC'),
    sample_size UInt32,
    p_value Nullable(Float64),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_event_id event_id TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(window_end)
ORDER BY (project_id, name, window_end, event_id)
TTL toDateTime(window_end) + INTERVAL 800 DAY;
