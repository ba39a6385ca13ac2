"""The ingest service: the front door for apps' completions and feedback."""
