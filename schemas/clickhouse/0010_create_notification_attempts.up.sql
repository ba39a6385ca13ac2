-- Every webhook delivery attempt of an alert notification (issue 5), sunk by the
-- processor from NotificationAttempted events on the alerts topic: Grafana's
-- delivery timeline, and the dead letters (outcome = 'dead_lettered').
CREATE TABLE IF NOT EXISTS notification_attempts
(
    event_id UUID,
    project_id LowCardinality(String),
    ts DateTime64(3, 'UTC'),
    notification_id String,
    rule LowCardinality(String),
    fingerprint String,
    status LowCardinality(String),
    receiver LowCardinality(String),
    receiver_type LowCardinality(String),
    attempt UInt16,
    outcome LowCardinality(String),
    http_status Nullable(UInt16),
    error String,
    duration_ms Nullable(Float64),
    next_attempt_at Nullable(DateTime64(3, 'UTC')),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_event_id event_id TYPE bloom_filter GRANULARITY 4
)
-- Keyed on event_id: a redelivered attempt event replaces itself, never counts twice.
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (project_id, rule, ts, event_id)
TTL toDateTime(ts) + INTERVAL 400 DAY;
