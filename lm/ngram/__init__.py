"""N-gram language models: counting (DuckDB and in memory), estimation (mle, add-k,
witten-bell, absolute, kn, KenLM-exact mkn, katz, stupid-backoff), scoring, ARPA I/O and Zipf
statistics. KenLM-exact mkn also runs out of core in DuckDB (:func:`estimate_mkn_duckdb`).

    model = fit(train_stream, 5, "mkn", vocab_size=len(vocab))
    scores = model.score(test_stream)          # lm.metrics.TokenScores
    write_arpa(model, "ptb.arpa", vocab.tokens)
"""

from lmpipe.lm.ngram.arpa import ArpaError, ArpaModel, load_arpa, write_arpa
from lmpipe.lm.ngram.counting import (
    OrderCounts,
    StreamError,
    count_full_ngrams,
    count_ngrams,
    count_of_counts,
    count_shard,
    default_memory_limit,
    merge_shards,
    query_ngram_counts,
    shard_ranges,
    stream_table,
)
from lmpipe.lm.ngram.estimators import DiscountWarning
from lmpipe.lm.ngram.mkn import DiscountError, DiscountFallbackWarning
from lmpipe.lm.ngram.mkn_duckdb import DuckdbMknModel, choose_engine, estimate_mkn_duckdb
from lmpipe.lm.ngram.model import (
    BackoffModel,
    CountRatioModel,
    NgramModel,
    StupidBackoffModel,
    fit,
)
from lmpipe.lm.ngram.registry import BACKOFF_METHODS, METHODS, SMOOTHING, Smoothing
from lmpipe.lm.ngram.scoring import kenlm_perplexity
from lmpipe.lm.ngram.zipf import rank_frequency, top_ngrams, zipf_exponent

__all__ = [
    "ArpaError",
    "ArpaModel",
    "BACKOFF_METHODS",
    "BackoffModel",
    "CountRatioModel",
    "DiscountError",
    "DiscountFallbackWarning",
    "DiscountWarning",
    "DuckdbMknModel",
    "METHODS",
    "NgramModel",
    "OrderCounts",
    "SMOOTHING",
    "Smoothing",
    "StreamError",
    "StupidBackoffModel",
    "choose_engine",
    "count_full_ngrams",
    "count_ngrams",
    "count_of_counts",
    "count_shard",
    "default_memory_limit",
    "estimate_mkn_duckdb",
    "fit",
    "kenlm_perplexity",
    "load_arpa",
    "merge_shards",
    "query_ngram_counts",
    "rank_frequency",
    "shard_ranges",
    "stream_table",
    "top_ngrams",
    "write_arpa",
    "zipf_exponent",
]
