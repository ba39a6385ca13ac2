-- Lineage of a model version beyond its job and dataset (issue 6): what the job
-- started from, which launcher ran it, and where the trained weights are.
ALTER TABLE model_versions
    ADD COLUMN IF NOT EXISTS base_model String DEFAULT '' AFTER model,
    ADD COLUMN IF NOT EXISTS launcher LowCardinality(String) DEFAULT '' AFTER dataset_version,
    ADD COLUMN IF NOT EXISTS artifact_uri String DEFAULT '' AFTER launcher;
