"""The retraining service: preference pairs from feedback, datasets, DPO jobs, evaluation gate."""
