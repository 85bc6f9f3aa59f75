"""lmpipe's library: corpora, tokenizers, vocabularies, n-gram and neural language models,
metrics, warehouse I/O and report rendering. Pure Python + numpy/torch/duckdb/pyarrow;
nothing here imports Prefect (tests/test_layout.py checks it)."""

__version__ = "0.1.0"
