-- Content of OpenTelemetry GenAI calls that arrived apart from their spans, as OTLP
-- log records (issue 13). The writer joins it into the completion row, whichever
-- arrives first; kept so that a completion arriving later still finds it.
CREATE TABLE IF NOT EXISTS completion_contents
(
    event_id UUID,
    project_id LowCardinality(String),
    ts DateTime64(3, 'UTC'),
    completion_id UUID,
    trace_id String,
    span_id String,
    model LowCardinality(String),
    prompt String CODEC(ZSTD(3)) COMMENT 'JSON list of chat messages',
    choices String CODEC(ZSTD(3)) COMMENT 'JSON list of choice messages',
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_event_id event_id TYPE bloom_filter GRANULARITY 4,
    INDEX idx_completion_id completion_id TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (project_id, ts, event_id)
TTL toDateTime(ts) + INTERVAL 400 DAY;
