-- whylogs profiles of the scalar features, one per (project, model, prompt_version,
-- window): a serialized DatasetProfileView that `whylogs` can read back and merge.
-- Keyed by window so a timer that re-runs after a crash replaces its own row.
CREATE TABLE IF NOT EXISTS window_profiles
(
    project_id LowCardinality(String),
    model LowCardinality(String),
    prompt_version LowCardinality(String),
    window_start DateTime64(3, 'UTC'),
    window_end DateTime64(3, 'UTC'),
    sample_size UInt32,
    profile String CODEC(ZSTD(3)),
    written_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(written_at)
PARTITION BY toYYYYMM(window_end)
ORDER BY (project_id, model, prompt_version, window_end)
TTL toDateTime(window_end) + INTERVAL 400 DAY;
