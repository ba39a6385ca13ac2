ALTER TABLE retrain_jobs
    DROP COLUMN IF EXISTS artifact_uri,
    DROP COLUMN IF EXISTS launcher,
    DROP COLUMN IF EXISTS base_model;
