"""Prefect tasks: thin wrappers over ``lm`` that add cache keys, retries, logging and artifacts."""
