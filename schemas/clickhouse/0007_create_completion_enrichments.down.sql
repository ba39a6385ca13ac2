DROP TABLE IF EXISTS completion_enrichments;
