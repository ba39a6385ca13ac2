-- A window runs many tests: p_value is now adjusted for multiplicity (Holm over the
-- metric's family) and the test's own p-value is kept beside it. sample_size is what
-- the test used of the current window; rows_total the window's rows before duplicates
-- and sessions were collapsed; reference_size the reference's rows. NULL: not a test.
ALTER TABLE metrics
    ADD COLUMN IF NOT EXISTS p_value_raw Nullable(Float64) AFTER p_value,
    ADD COLUMN IF NOT EXISTS reference_size Nullable(UInt32) AFTER p_value_raw,
    ADD COLUMN IF NOT EXISTS rows_total Nullable(UInt32) AFTER reference_size;
