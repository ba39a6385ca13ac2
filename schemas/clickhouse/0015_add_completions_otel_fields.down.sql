ALTER TABLE completions
    DROP INDEX IF EXISTS idx_response_id,
    DROP COLUMN IF EXISTS error_type,
    DROP COLUMN IF EXISTS reasoning_tokens,
    DROP COLUMN IF EXISTS cache_write_tokens,
    DROP COLUMN IF EXISTS cache_read_tokens,
    DROP COLUMN IF EXISTS choices,
    DROP COLUMN IF EXISTS finish_reasons,
    DROP COLUMN IF EXISTS response_id,
    DROP COLUMN IF EXISTS response_model,
    DROP COLUMN IF EXISTS request_model,
    DROP COLUMN IF EXISTS span_id;
