-- Registered model versions with their lineage and gate verdict. The latest row
-- per (project, model, version) wins, so a status change is a new row.
CREATE TABLE IF NOT EXISTS model_versions
(
    project_id LowCardinality(String),
    model LowCardinality(String) COMMENT 'the base model that was fine-tuned',
    version String,
    job_id String,
    dataset_version String,
    metrics Map(LowCardinality(String), Float64),
    gate_passed Bool,
    gate_reasons Array(String),
    status LowCardinality(String) COMMENT 'registered, promoted or retired',
    registered_at DateTime64(3, 'UTC'),
    updated_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (project_id, model, version);
