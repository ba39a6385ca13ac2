DROP TABLE IF EXISTS completion_embeddings;
