-- What the OpenTelemetry GenAI conventions carry beyond a completion's first fields
-- (issue 13): the span, both models, the provider's response id (two instrumentations
-- on one client are deduplicated on it), finish reasons, cached and reasoning tokens,
-- the error of a failed call, and every choice with its structured parts as JSON.
ALTER TABLE completions
    ADD COLUMN IF NOT EXISTS span_id String DEFAULT '' AFTER parent_id,
    ADD COLUMN IF NOT EXISTS request_model LowCardinality(String) DEFAULT '' AFTER model_version,
    ADD COLUMN IF NOT EXISTS response_model LowCardinality(String) DEFAULT '' AFTER request_model,
    ADD COLUMN IF NOT EXISTS response_id String DEFAULT '' AFTER response_model,
    ADD COLUMN IF NOT EXISTS finish_reasons Array(LowCardinality(String)) AFTER completion,
    ADD COLUMN IF NOT EXISTS choices String DEFAULT '' CODEC(ZSTD(3)) COMMENT 'JSON list of choice messages, empty when there is one plain text' AFTER finish_reasons,
    ADD COLUMN IF NOT EXISTS cache_read_tokens Nullable(UInt32) AFTER completion_tokens,
    ADD COLUMN IF NOT EXISTS cache_write_tokens Nullable(UInt32) AFTER cache_read_tokens,
    ADD COLUMN IF NOT EXISTS reasoning_tokens Nullable(UInt32) AFTER cache_write_tokens,
    ADD COLUMN IF NOT EXISTS error_type LowCardinality(String) DEFAULT '' AFTER cost_usd,
    ADD INDEX IF NOT EXISTS idx_response_id response_id TYPE bloom_filter GRANULARITY 4;
