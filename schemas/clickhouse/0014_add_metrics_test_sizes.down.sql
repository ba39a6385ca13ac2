ALTER TABLE metrics
    DROP COLUMN IF EXISTS rows_total,
    DROP COLUMN IF EXISTS reference_size,
    DROP COLUMN IF EXISTS p_value_raw;
