-- The same lineage on every job event (issue 6), so a failed job also says what it ran.
ALTER TABLE retrain_jobs
    ADD COLUMN IF NOT EXISTS base_model String DEFAULT '' AFTER model,
    ADD COLUMN IF NOT EXISTS launcher LowCardinality(String) DEFAULT '' AFTER base_model,
    ADD COLUMN IF NOT EXISTS artifact_uri String DEFAULT '' AFTER launcher;
