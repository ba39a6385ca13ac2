ALTER TABLE drift_baselines DROP COLUMN IF EXISTS event_id;
