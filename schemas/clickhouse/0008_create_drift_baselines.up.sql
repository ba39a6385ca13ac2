-- Pinned reference windows for drift (`llmloop baseline set`). Without a row here
-- the reference is the first N events of (project, model, prompt_version). The
-- latest row per key wins (ReplacingMergeTree on set_at); prompt_version '' pins
-- every prompt version of the model.
CREATE TABLE IF NOT EXISTS drift_baselines
(
    project_id LowCardinality(String),
    model LowCardinality(String),
    prompt_version LowCardinality(String),
    window_start DateTime64(3, 'UTC'),
    window_end DateTime64(3, 'UTC'),
    note String,
    set_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(set_at)
ORDER BY (project_id, model, prompt_version);
