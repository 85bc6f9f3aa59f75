"""Step: a corpus of the experiment (a registry name or a user's own files) -> verified source
-> token ids and vocabulary in the warehouse (:func:`lmpipe.lm.ingest.ingest`)."""

from __future__ import annotations

from typing import Any

from lmpipe.lm.corpus import CorpusSource, resolve_files, resolve_registry
from lmpipe.lm.ingest import IngestResult, IngestSettings, data_key, ingest
from lmpipe.lm.process_memory import keep_freed_memory
from lmpipe.lm.steps.home import Home


def resolve_source(home: Home, corpus: dict[str, Any], tokenizer: str) -> CorpusSource:
    """A corpus of the config (registry name or own files) as a verified ``CorpusSource``; a
    registry corpus not on this machine yet is downloaded into the home's cache."""
    if corpus.get("path") or corpus.get("train"):
        return resolve_files(
            corpus["name"],
            all_text=corpus.get("path"),
            train=corpus.get("train"),
            valid=corpus.get("valid"),
            test=corpus.get("test"),
            tokenizer=tokenizer,
            prefixes=tuple(corpus.get("prefixes") or ()),
        )
    src = resolve_registry(corpus["name"], home.cache_dir, home.corpora_dir)
    if corpus.get("prefixes"):
        src = CorpusSource(**{**src.__dict__, "prefixes": tuple(corpus["prefixes"])})
    return src


def ingest_settings(
    tokenizer: str, vocab: dict[str, Any], source: CorpusSource | None = None
) -> IngestSettings:
    """The ingest settings of a config's ``vocab`` section for one tokenizer; a ``min_freq``
    left unset is the corpus's own (its registry entry's; 1 for a user's own files)."""
    own = source.min_freq if source is not None else 1
    bpe = tokenizer == "bpe"
    return IngestSettings(
        tokenizer=tokenizer,
        normalize=vocab.get("normalize", "none"),
        min_freq=int(vocab.get("min_freq") or own),
        max_size=vocab.get("max_size"),
        encoding_errors=vocab.get("encoding_errors", "strict"),
        bpe_vocab_size=int(vocab.get("bpe_vocab_size") or _default("bpe_vocab_size"))
        if bpe
        else None,
    )


def _default(name: str) -> Any:
    from lmpipe.lm.config import VocabConfig

    return VocabConfig.model_fields[name].default


def ingest_corpus(
    home: Home, corpus: dict[str, Any], tokenizer: str, vocab: dict[str, Any]
) -> IngestResult:
    keep_freed_memory()  # arrays of a few MB each, freed and allocated again block by block
    source = resolve_source(home, corpus, tokenizer)
    return ingest(source, ingest_settings(tokenizer, vocab, source), home.warehouse)


def corpus_data_key(
    home: Home, corpus: dict[str, Any], tokenizer: str, vocab: dict[str, Any]
) -> str:
    """The content key an ingest of this corpus would have (its files' hash + the settings)."""
    source = resolve_source(home, corpus, tokenizer)
    return data_key(source, ingest_settings(tokenizer, vocab, source))
