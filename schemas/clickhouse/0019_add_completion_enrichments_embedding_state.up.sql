-- Whether a completion is in the embedding sample (issue 18). Scalar rows are
-- written at once; the vectors of a 'sampled' row arrive later in
-- completion_embeddings. 'not_sampled': outside the sample (rate on the row);
-- 'off': embeddings disabled. Rows written before this migration kept their
-- vectors in this table: 'embedded' (embedded = true) or 'not_sampled'.
ALTER TABLE completion_enrichments
    ADD COLUMN IF NOT EXISTS embedding_state LowCardinality(String)
        DEFAULT if(embedded, 'embedded', 'not_sampled') AFTER embedded;
