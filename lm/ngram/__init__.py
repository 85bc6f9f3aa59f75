"""N-gram language models: counting, estimation, scoring, ARPA I/O."""
