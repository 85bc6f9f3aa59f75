"""N-gram language models: counting (DuckDB and in memory), estimation (mle, add-k,
witten-bell, absolute, kn, KenLM-exact mkn, katz, stupid-backoff), scoring, ARPA I/O and Zipf
statistics. KenLM-exact mkn also runs out of core in DuckDB (:func:`estimate_mkn_duckdb`).

    model = fit(train_stream, 5, "mkn", vocab_size=len(vocab))
    scores = model.score(test_stream)          # lm.metrics.TokenScores
    write_arpa(model, "ptb.arpa", vocab.tokens)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# What the package exports, imported when first used: importing a single submodule (the
# registry, say) then costs only that submodule, not every model this package holds.
_EXPORTS = {
    "ArpaError": "lmpipe.lm.ngram.arpa",
    "ArpaModel": "lmpipe.lm.ngram.arpa",
    "BACKOFF_METHODS": "lmpipe.lm.ngram.registry",
    "BackoffModel": "lmpipe.lm.ngram.model",
    "CountRatioModel": "lmpipe.lm.ngram.model",
    "DiscountError": "lmpipe.lm.ngram.mkn",
    "DiscountFallbackWarning": "lmpipe.lm.ngram.mkn",
    "DiscountWarning": "lmpipe.lm.ngram.estimators",
    "DuckdbMknModel": "lmpipe.lm.ngram.mkn_duckdb",
    "METHODS": "lmpipe.lm.ngram.registry",
    "NgramModel": "lmpipe.lm.ngram.model",
    "OrderCounts": "lmpipe.lm.ngram.counting",
    "SMOOTHING": "lmpipe.lm.ngram.registry",
    "Smoothing": "lmpipe.lm.ngram.registry",
    "StreamError": "lmpipe.lm.ngram.counting",
    "StupidBackoffModel": "lmpipe.lm.ngram.model",
    "choose_engine": "lmpipe.lm.ngram.mkn_duckdb",
    "count_full_ngrams": "lmpipe.lm.ngram.counting",
    "count_ngrams": "lmpipe.lm.ngram.counting",
    "count_of_counts": "lmpipe.lm.ngram.counting",
    "count_shard": "lmpipe.lm.ngram.counting",
    "default_memory_limit": "lmpipe.lm.ngram.counting",
    "estimate_mkn_duckdb": "lmpipe.lm.ngram.mkn_duckdb",
    "fit": "lmpipe.lm.ngram.model",
    "kenlm_perplexity": "lmpipe.lm.ngram.scoring",
    "load_arpa": "lmpipe.lm.ngram.arpa",
    "entropy_deltas": "lmpipe.lm.ngram.prune",
    "prune_entropy": "lmpipe.lm.ngram.prune",
    "merge_shards": "lmpipe.lm.ngram.counting",
    "query_ngram_counts": "lmpipe.lm.ngram.counting",
    "rank_frequency": "lmpipe.lm.ngram.zipf",
    "shard_ranges": "lmpipe.lm.ngram.counting",
    "stream_table": "lmpipe.lm.ngram.counting",
    "top_ngrams": "lmpipe.lm.ngram.zipf",
    "write_arpa": "lmpipe.lm.ngram.arpa",
    "zipf_exponent": "lmpipe.lm.ngram.zipf",
}

if TYPE_CHECKING:
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
    from lmpipe.lm.ngram.prune import entropy_deltas, prune_entropy
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
    "entropy_deltas",
    "prune_entropy",
    "merge_shards",
    "query_ngram_counts",
    "rank_frequency",
    "shard_ranges",
    "stream_table",
    "top_ngrams",
    "write_arpa",
    "zipf_exponent",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
