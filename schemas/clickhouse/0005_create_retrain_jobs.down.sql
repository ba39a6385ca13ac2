DROP TABLE IF EXISTS retrain_jobs;
