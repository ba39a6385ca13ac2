-- The life of each fine-tune job: one row per lifecycle event.
CREATE TABLE IF NOT EXISTS retrain_jobs
(
    event_id UUID,
    project_id LowCardinality(String),
    ts DateTime64(3, 'UTC'),
    job_id String,
    stage LowCardinality(String),
    model LowCardinality(String),
    dataset_version String,
    model_version String,
    progress Nullable(Float64),
    metrics Map(LowCardinality(String), Float64),
    gate_passed Nullable(Bool),
    gate_reasons Array(String),
    message String,
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_event_id event_id TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (project_id, job_id, ts, event_id)
TTL toDateTime(ts) + INTERVAL 800 DAY;
