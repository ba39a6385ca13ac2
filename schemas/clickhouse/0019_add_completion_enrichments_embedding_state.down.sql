ALTER TABLE completion_enrichments DROP COLUMN IF EXISTS embedding_state;
