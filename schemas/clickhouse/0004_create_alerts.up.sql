-- Alert transitions (firing, resolved), the timeline Grafana shows.
CREATE TABLE IF NOT EXISTS alerts
(
    event_id UUID,
    project_id LowCardinality(String),
    ts DateTime64(3, 'UTC'),
    rule LowCardinality(String),
    status LowCardinality(String),
    fingerprint String,
    severity LowCardinality(String),
    labels Map(LowCardinality(String), String),
    annotations Map(LowCardinality(String), String),
    value Nullable(Float64),
    threshold Nullable(Float64),
    starts_at DateTime64(3, 'UTC'),
    ends_at Nullable(DateTime64(3, 'UTC')),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_event_id event_id TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (project_id, rule, ts, event_id)
TTL toDateTime(ts) + INTERVAL 800 DAY;
