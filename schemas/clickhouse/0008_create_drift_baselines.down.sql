DROP TABLE IF EXISTS drift_baselines;
