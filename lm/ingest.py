"""Ingestion: a corpus's text -> contiguous splits -> vocabulary -> token ids in Parquet.

Streaming throughout (DESIGN sections 2 and 4): the text is read line by line (at most one
line, and for long lines one chunk of it, in memory), the vocabulary is counted over the
training lines, then every split is encoded and written in bounded batches. The output is
content-addressed: its folder name is a hash of the corpus content and every setting that
changes the tokens, so an unchanged corpus is never ingested twice, and a finished ingest is
marked by ``manifest.json`` written last.
"""

from __future__ import annotations

import json
import re
import time
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lm.corpus import SPLITS, CorpusSource, DecodeStats, iter_lines
from lm.errors import CorpusError
from lm.fileio import atomic_path, atomic_write_text, file_lock, sha256_text
from lm.tokenize import get_normalizer, get_tokenizer
from lm.version import code_version
from lm.vocab import EOS, UNK, Vocab, vocab_from_counts
from lm.warehouse import CONTENT_SCHEMAS, Warehouse, write_parquet

BATCH_TOKENS = 1 << 20  # tokens per Parquet row group / memory batch
LINE_CHUNK = 1 << 20  # characters of a very long line tokenized at a time
_SPACE_RUN = re.compile(r"\s+")


@dataclass(frozen=True)
class IngestSettings:
    tokenizer: str = "char"
    normalize: str = "none"
    min_freq: int = 1
    max_size: int | None = None
    encoding_errors: str = "strict"
    split_fractions: tuple[float, float] = (0.8, 0.9)


@dataclass
class SplitStats:
    split: str
    lines: int = 0
    tokens: int = 0
    types: int = 0
    oov: int = 0
    bytes: int = 0
    path: str = ""

    @property
    def oov_rate(self) -> float:
        return self.oov / self.tokens if self.tokens else 0.0


@dataclass
class IngestResult:
    corpus: str
    tokenizer: str
    key: str
    sha256: str
    origin: str
    vocab_path: str
    vocab_size: int
    replaced: int
    prefixes: list[str]
    splits: dict[str, SplitStats] = field(default_factory=dict)
    settings: dict[str, object] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> IngestResult:
        """From ``as_dict`` output; extra keys (a task adds ``files``) are ignored."""
        names = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        d["splits"] = {k: SplitStats(**v) for k, v in d["splits"].items()}  # type: ignore[union-attr]
        return cls(**d)  # type: ignore[arg-type]

    @classmethod
    def from_json(cls, text: str) -> IngestResult:
        return cls.from_dict(json.loads(text))


def data_key(source: CorpusSource, settings: IngestSettings) -> str:
    return sha256_text(source.sha256, json.dumps(asdict(settings), sort_keys=True), code_version())[
        :16
    ]


def ingest(source: CorpusSource, settings: IngestSettings, wh: Warehouse) -> IngestResult:
    """Ingest ``source`` into ``wh`` (or return the finished ingest of identical content)."""
    get_tokenizer(settings.tokenizer)  # validate names before any work
    get_normalizer(settings.normalize)
    key = data_key(source, settings)
    out_dir = wh.content_dir("tokens", source.name, settings.tokenizer, key)
    manifest = out_dir / "manifest.json"
    with file_lock(out_dir.parent / f"key={key}.lock"):
        if manifest.exists():
            return IngestResult.from_json(manifest.read_text(encoding="utf-8"))
        result = _ingest(source, settings, wh, key)
        atomic_write_text(manifest, result.to_json())
    return result


def _ingest(source: CorpusSource, settings: IngestSettings, wh: Warehouse, key: str) -> IngestResult:
    t0 = time.perf_counter()
    decode = DecodeStats()
    bounds = _split_bounds(source, settings, decode) if not source.has_own_split else None

    # pass 1: vocabulary from the training lines only
    counter: Counter[str] = Counter()
    for split, line in _lines(source, settings, bounds, DecodeStats()):
        if split != "train":
            if bounds is not None:
                break
            continue
        for chunk in _token_chunks(line, settings):
            counter.update(chunk)
    if not counter:
        raise CorpusError(
            f"corpus {source.name!r} has no training tokens (empty or blank-only text in "
            f"{_first_source(source)}); give a text with at least one non-empty line"
        )
    vocab = vocab_from_counts(counter, min_freq=settings.min_freq, max_size=settings.max_size)

    # pass 2: encode every split into Parquet, in bounded batches
    stats = {s: SplitStats(split=s) for s in SPLITS}
    writers: dict[str, _SplitWriter] = {}
    seen_types: dict[str, set[str]] = {s: set() for s in SPLITS}
    try:
        for split, line in _lines(source, settings, bounds, decode):
            w = writers.get(split)
            if w is None:
                w = writers[split] = _SplitWriter(wh.tokens_path(source.name, settings.tokenizer, key, split))
            st = stats[split]
            st.lines += 1
            st.bytes += len(line.encode("utf-8")) + 1  # the newline stands for </s>
            for chunk in _token_chunks(line, settings):
                seen_types[split].update(chunk)
                ids = vocab.ids(chunk)
                st.oov += ids.count(UNK)
                w.add(ids)
            w.add_eos()
        for split, w in writers.items():
            w.close()
            stats[split].tokens = w.tokens
            stats[split].path = str(w.dest)
            stats[split].types = len(seen_types[split])
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    if stats["train"].lines == 0:
        raise CorpusError(f"corpus {source.name!r} has no training lines; check {_first_source(source)}")
    vocab_path = wh.vocab_path(source.name, settings.tokenizer, key)
    write_parquet(_vocab_table(vocab), vocab_path)
    return IngestResult(
        corpus=source.name,
        tokenizer=settings.tokenizer,
        key=key,
        sha256=source.sha256,
        origin=source.origin,
        vocab_path=str(vocab_path),
        vocab_size=len(vocab),
        replaced=decode.replaced,
        prefixes=list(source.prefixes),
        splits={s: st for s, st in stats.items() if st.lines},
        settings=asdict(settings),
        seconds=time.perf_counter() - t0,
    )


def _first_source(source: CorpusSource) -> str:
    return str(next(iter(source.parts.values()))[0])


def _clean_lines(source: CorpusSource, part: str, settings: IngestSettings, decode: DecodeStats) -> Iterator[str]:
    """Stripped, non-empty lines of one part of the corpus (DESIGN section 2)."""
    for src in source.parts[part]:
        for line in iter_lines(src, errors=settings.encoding_errors, stats=decode):
            line = line.strip()
            if line:
                yield line


def _split_bounds(source: CorpusSource, settings: IngestSettings, decode: DecodeStats) -> tuple[int, int]:
    n = sum(1 for _ in _clean_lines(source, "all", settings, decode))
    if n == 0:
        raise CorpusError(
            f"corpus {source.name!r} has no non-empty line ({_first_source(source)} is empty or "
            "blank); give a text file with content"
        )
    a, b = settings.split_fractions
    return int(a * n), int(b * n)


def _lines(
    source: CorpusSource, settings: IngestSettings, bounds: tuple[int, int] | None, decode: DecodeStats
) -> Iterator[tuple[str, str]]:
    """(split, line) pairs in corpus order: contiguous blocks for a single text, else each
    split's own files."""
    if bounds is None:
        for split in SPLITS:
            if split in source.parts:
                for line in _clean_lines(source, split, settings, decode):
                    yield split, line
        return
    train_end, valid_end = bounds
    for i, line in enumerate(_clean_lines(source, "all", settings, decode)):
        yield ("train" if i < train_end else "valid" if i < valid_end else "test"), line


def _token_chunks(line: str, settings: IngestSettings) -> Iterator[list[str]]:
    """Tokens of one line, in chunks of about LINE_CHUNK characters, so that a single line of
    100 MB is tokenized without holding all its tokens at once. Word tokenizers cut only at
    whitespace, so no token is split."""
    line = get_normalizer(settings.normalize)(line)
    tokenize = get_tokenizer(settings.tokenizer)
    if settings.normalize != "none":
        line = line.strip()
    start, n = 0, len(line)
    while start < n:
        end = min(start + LINE_CHUNK, n)
        if end < n and settings.tokenizer != "char":
            m = _SPACE_RUN.search(line, end)
            end = m.end() if m else n
        yield tokenize(line[start:end])
        start = end


class _SplitWriter:
    """Buffers one split's ids and writes them as row groups of a Parquet file, renamed into
    place on close (never visible half-written)."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self._ctx = atomic_path(dest)
        self._tmp = self._ctx.__enter__()
        self._writer = pq.ParquetWriter(self._tmp, CONTENT_SCHEMAS["tokens"], compression="zstd")
        self._buf = array("i")
        self._sent_buf = array("q")
        self.tokens = 0
        self._sent = 0

    def add(self, ids: list[int]) -> None:
        self._buf.extend(ids)
        self._sent_buf.extend([self._sent] * len(ids))
        if len(self._buf) >= BATCH_TOKENS:
            self._flush()

    def add_eos(self) -> None:
        self._buf.append(EOS)
        self._sent_buf.append(self._sent)
        self._sent += 1

    def _flush(self) -> None:
        if not self._buf:
            return
        ids = np.frombuffer(self._buf, dtype=np.int32)
        pos = np.arange(self.tokens, self.tokens + len(ids), dtype=np.int64)
        sent = np.frombuffer(self._sent_buf, dtype=np.int64)
        self._writer.write_table(
            pa.table({"pos": pos, "sent": sent, "id": ids}, schema=CONTENT_SCHEMAS["tokens"])
        )
        self.tokens += len(ids)
        self._buf = array("i")
        self._sent_buf = array("q")

    def close(self) -> None:
        self._flush()
        self._writer.close()
        self._ctx.__exit__(None, None, None)

    def abort(self) -> None:
        try:
            self._writer.close()
        finally:
            self._ctx.__exit__(RuntimeError, RuntimeError("aborted"), None)


def _vocab_table(vocab: Vocab) -> pa.Table:
    return pa.table(
        {
            "id": np.arange(len(vocab), dtype=np.int32),
            "token": vocab.tokens,
            "count": np.asarray(vocab.counts, dtype=np.int64),
        },
        schema=CONTENT_SCHEMAS["vocab"],
    )


def load_vocab(path: str | Path) -> Vocab:
    t = pq.read_table(path)
    return Vocab(tokens=tuple(t.column("token").to_pylist()), counts=tuple(t.column("count").to_pylist()))


def load_stream(path: str | Path) -> np.ndarray:
    """A split's token stream (int32 ids, each sentence ended by EOS)."""
    return pq.read_table(path, columns=["id"]).column("id").to_numpy().astype(np.int32, copy=False)
