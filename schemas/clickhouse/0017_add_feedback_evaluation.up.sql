-- An OpenTelemetry gen_ai.evaluation.result names its evaluation and may carry a
-- label beside or instead of a score (issue 13).
ALTER TABLE feedback
    ADD COLUMN IF NOT EXISTS evaluation LowCardinality(String) DEFAULT '' AFTER source,
    ADD COLUMN IF NOT EXISTS label LowCardinality(String) DEFAULT '' AFTER evaluation;
