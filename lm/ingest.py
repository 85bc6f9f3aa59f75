"""Ingestion: a corpus's text -> contiguous splits -> vocabulary -> token ids in Parquet.

Streaming throughout (docs/design.md §2 and §4): the text is read in blocks of whole lines of
about 1 MB, a line longer than that in pieces of about 1 MB (so a single line of 100 MB needs no
more memory than a short one); the vocabulary is counted over the training lines, then every
split is encoded and written in bounded batches. Whitespace words of ASCII blocks are split,
counted and encoded by Arrow, every other block line by line in Python, to the same tokens
(``_arrow_words``); the training blocks that Arrow encoded for counting are kept for the second
pass, up to ``KEEP_TRAIN_BYTES``. The output is
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
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from itertools import chain, repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lmpipe.lm.corpus import (
    SPLITS,
    Block,
    CorpusSource,
    DecodeStats,
    TextSource,
    expand_path,
    iter_blocks,
)
from lmpipe.lm.errors import CorpusError, WarehouseError
from lmpipe.lm.fileio import atomic_path, atomic_write_text, file_lock, sha256_text
from lmpipe.lm.tokenize import (
    LEARNED_TOKENIZERS,
    Tokenizer,
    check_tokenizer,
    get_normalizer,
    get_tokenizer,
)
from lmpipe.lm.version import code_version
from lmpipe.lm.vocab import EOS, UNK, Vocab, vocab_from_counts
from lmpipe.lm.warehouse import CONTENT_SCHEMAS, Warehouse, write_parquet
from lmpipe.lm.warehouse.store import DELTA

if TYPE_CHECKING:
    from lmpipe.lm.bpe import Bpe

BATCH_TOKENS = 1 << 20  # tokens per Parquet row group / memory batch


@dataclass(frozen=True)
class IngestSettings:
    tokenizer: str = "char"
    normalize: str = "none"
    min_freq: int = 1
    max_size: int | None = None
    encoding_errors: str = "strict"
    split_fractions: tuple[float, float] = (0.8, 0.9)
    bpe_vocab_size: int | None = None  # --tokenizer bpe only (None otherwise: keys stay apart)


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
    bom_files: int = 0  # files whose UTF-8 byte-order mark was dropped
    cr_only_files: int = 0  # files whose lines end in \r alone (read as one line each)
    tokenizer_path: str = ""  # a learned tokenizer's file (BPE merges), beside the vocabulary

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IngestResult:
        """From ``as_dict`` output; extra keys (a task adds ``files``) are ignored."""
        names = {f.name for f in fields(cls)}
        kept = {k: v for k, v in d.items() if k in names}
        kept["splits"] = {k: SplitStats(**v) for k, v in kept["splits"].items()}
        return cls(**kept)

    @classmethod
    def from_json(cls, text: str) -> IngestResult:
        return cls.from_dict(json.loads(text))


def data_key(source: CorpusSource, settings: IngestSettings) -> str:
    return sha256_text(source.sha256, json.dumps(asdict(settings), sort_keys=True), code_version())[
        :16
    ]


def ingest(source: CorpusSource, settings: IngestSettings, wh: Warehouse) -> IngestResult:
    """Ingest ``source`` into ``wh`` (or return the finished ingest of identical content)."""
    check_tokenizer(settings.tokenizer)  # validate names before any work
    get_normalizer(settings.normalize)
    key = data_key(source, settings)
    out_dir = wh.content_dir("tokens", source.name, settings.tokenizer, key)
    manifest = out_dir / "manifest.json"
    with file_lock(out_dir.parent / f"key={key}.lock"):
        if manifest.exists():
            return _relocated(IngestResult.from_json(manifest.read_text(encoding="utf-8")), wh)
        result = _ingest(source, settings, wh, key)
        atomic_write_text(manifest, result.to_json())
    return result


def stored_ingest(wh: Warehouse, corpus: str, tokenizer: str, key: str) -> IngestResult:
    """The finished ingest of data key ``key`` (what a run's ``corpora`` row names)."""
    manifest = wh.content_dir("tokens", corpus, tokenizer, key) / "manifest.json"
    try:
        text = manifest.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WarehouseError(
            f"the tokens of {corpus}/{tokenizer} (data key {key}) are gone from {wh.root}: "
            "run the experiment again to re-create them"
        ) from None
    return _relocated(IngestResult.from_json(text), wh)


def _relocated(result: IngestResult, wh: Warehouse) -> IngestResult:
    """A finished ingest's file paths under ``wh`` as it is now (the home may have moved)."""
    result.vocab_path = str(wh.vocab_path(result.corpus, result.tokenizer, result.key))
    if result.tokenizer_path:
        path = wh.learned_tokenizer_path(result.corpus, result.tokenizer, result.key)
        result.tokenizer_path = str(path)
    for split, st in result.splits.items():
        st.path = str(wh.tokens_path(result.corpus, result.tokenizer, result.key, split))
    return result


def _ingest(
    source: CorpusSource, settings: IngestSettings, wh: Warehouse, key: str
) -> IngestResult:
    t0 = time.perf_counter()
    decode = DecodeStats()
    bounds = _split_bounds(source, settings) if not source.has_own_split else None

    # pass 0, for a learned tokenizer: its merges, from the training lines only
    learned_path = ""
    tokenize: Tokenizer | None = None
    if settings.tokenizer in LEARNED_TOKENIZERS:
        bpe = _learn_bpe(source, settings, bounds)
        dest = wh.learned_tokenizer_path(source.name, settings.tokenizer, key)
        bpe.save(dest)
        learned_path, tokenize = str(dest), bpe.tokens

    # whitespace words of whole lines split and looked up by Arrow (C++) where that is exact
    arrow = settings.tokenizer == "whitespace" and settings.normalize == "none"

    # pass 1: vocabulary from the training lines only (the splits come in SPLITS order, train
    # first); Arrow-split training blocks are kept, encoded, for pass 2 (_TrainBlocks)
    counter: Counter[str] = Counter()
    arrow_counts = _ArrowCounts(counter)
    tokens = _LineTokens(settings, tokenize)
    train_decode = DecodeStats()
    kept = _TrainBlocks()
    lines = 0
    for split, block in _split_blocks(source, settings, bounds, train_decode):
        if split != "train":
            break
        if isinstance(block, list):
            lines += len(block)
            text = "\n".join(block) if arrow else ""
            words = _arrow_words(block, text) if arrow else None
            if words is not None:
                enc = _EncodedLines.of(words, len(block), len(text) + 1)  # ASCII: 1 byte a char
                arrow_counts.add(enc.dictionary, enc.counts())
                kept.add(enc)
                continue
            kept.drop()
            arrow_counts.flush()  # the counter keeps the order of first appearance
            counter.update(chain.from_iterable(tokens.lines(block)))
            continue
        kept.drop()
        arrow_counts.flush()
        piece, ends_line = block
        lines += ends_line
        for chunk in tokens.feed(piece, ends_line):
            counter.update(chunk)
    arrow_counts.flush()
    if not counter and lines and (settings.tokenizer == "word" or settings.normalize == "d2l"):
        how = "--tokenizer word" if settings.tokenizer == "word" else "normalize = d2l"
        raise CorpusError(
            f"corpus {source.name!r} has no training tokens: {how} keeps only Latin letters "
            f"(A-Z), and the {lines} line(s) of {_first_source(source, 'train')} have none; "
            "use --tokenizer char (the unit for Chinese) or whitespace"
        )
    if not counter:
        raise CorpusError(
            f"corpus {source.name!r} has no training tokens (empty or blank-only text in "
            f"{_first_source(source, 'train')}); give a text with at least one non-empty line"
        )
    vocab = vocab_from_counts(counter, min_freq=settings.min_freq, max_size=settings.max_size)
    index = {t: i for i, t in enumerate(vocab.tokens)}  # vocab.ids, at C speed for long streams

    # pass 2: encode every split into Parquet, in bounded batches
    stats = {s: SplitStats(split=s) for s in SPLITS}
    writers: dict[str, _SplitWriter] = {}
    seen_types: dict[str, set[str]] = {s: set() for s in SPLITS}
    tokens = _LineTokens(settings, tokenize)
    blocks = _pass2_blocks(source, settings, bounds, decode, kept.blocks, train_decode)
    del kept
    try:
        for split, block in blocks:
            w = writers.get(split)
            if w is None:
                w = writers[split] = _SplitWriter(
                    wh.tokens_path(source.name, settings.tokenizer, key, split)
                )
            st = stats[split]
            if isinstance(block, _EncodedLines | list):  # whole lines: the fast path
                types: Iterable[str]
                if isinstance(block, _EncodedLines):  # kept from pass 1
                    st.lines += block.lines
                    st.bytes += block.bytes
                    ids, lengths, types = block.ids(index)
                else:
                    text = "\n".join(block)
                    size = len(text.encode("utf-8")) + 1  # a newline per line
                    st.lines += len(block)
                    st.bytes += size
                    words = _arrow_words(block, text) if arrow else None
                    ids, lengths, types = (
                        _EncodedLines.of(words, len(block), size).ids(index)
                        if words is not None
                        else _python_ids(block, tokens, index)
                    )
                if split != "train":  # the training types are the vocabulary count's keys
                    seen_types[split].update(types)
                st.oov += int(np.count_nonzero(ids == UNK))
                w.add_lines(ids, lengths)
                continue
            piece, ends_line = block
            st.bytes += len(piece.encode("utf-8"))
            for chunk in tokens.feed(piece, ends_line):
                if split != "train":  # the training types are the vocabulary count's keys
                    seen_types[split].update(chunk)
                piece_ids: list[int] = list(map(index.get, chunk, repeat(UNK)))
                st.oov += piece_ids.count(UNK)
                w.add(piece_ids)
            if ends_line:
                st.lines += 1
                st.bytes += 1  # the newline stands for </s>
                w.add_eos()
        for split, w in writers.items():
            w.close()
            stats[split].tokens = w.tokens
            stats[split].path = str(w.dest)
            stats[split].types = len(counter) if split == "train" else len(seen_types[split])
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    for split in ("train", "valid", "test"):
        if split in source.parts and stats[split].lines == 0:  # an own split file with no text
            raise CorpusError(
                f"the {split} text of corpus {source.name!r} "
                f"({_first_source(source, split)}) has no "
                f"non-empty line; give a {split} file with text"
            )
    vocab_path = wh.vocab_path(source.name, settings.tokenizer, key)
    write_parquet(_vocab_table(vocab), vocab_path, dictionary=False, delta=["id"])
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
        bom_files=len(decode.bom),
        cr_only_files=len(decode.cr_only),
        tokenizer_path=learned_path,
    )


def _learn_bpe(
    source: CorpusSource, settings: IngestSettings, bounds: tuple[int, int] | None
) -> Bpe:
    """BPE merges learned from the training lines (normalized as the splits are, in pieces
    cut before a whitespace, where GPT-2's pre-tokenization cuts too)."""
    from lmpipe.lm.bpe import Bpe

    def texts() -> Iterator[str]:
        pieces = _LineTokens(settings, lambda text: [text])
        for split, block in _split_blocks(source, settings, bounds, DecodeStats()):
            if split != "train":
                if bounds is not None:
                    return
                continue
            if isinstance(block, list):
                yield from chain.from_iterable(pieces.lines(block))
                continue
            for chunk in pieces.feed(*block):
                yield from chunk

    return Bpe.learn(texts(), settings.bpe_vocab_size or 0)


def text_lines(
    spec: str | Path, settings: IngestSettings, decode: DecodeStats | None = None
) -> Iterator[tuple[list[str], int]]:
    """(tokens, bytes) of every non-empty line of a text (file, folder or glob; .gz/.zip fine),
    stripped and tokenized exactly as a split is at ingest; ``bytes`` are the line's UTF-8
    bytes plus one for its newline, as the split's statistics count them."""
    get_tokenizer(settings.tokenizer)
    get_normalizer(settings.normalize)
    tokens = _LineTokens(settings)
    line: list[str] = []
    size = 0
    for block in _clean_blocks(expand_path(spec), settings, decode or DecodeStats()):
        if isinstance(block, list):
            for text, toks in zip(block, tokens.lines(block), strict=True):
                yield toks, len(text.encode("utf-8")) + 1
            continue
        piece, ends_line = block
        size += len(piece.encode("utf-8"))
        for chunk in tokens.feed(piece, ends_line):
            line.extend(chunk)
        if ends_line:
            yield line, size + 1
            line, size = [], 0


def _first_source(source: CorpusSource, part: str | None = None) -> str:
    srcs = source.parts.get(part or "", ()) or next(iter(source.parts.values()))
    return str(srcs[0]) if len(srcs) == 1 else f"{srcs[0]} and {len(srcs) - 1} more"


def _clean_blocks(
    srcs: Iterable[TextSource], settings: IngestSettings, decode: DecodeStats
) -> Iterator[Block]:
    """The non-empty lines of ``srcs``, stripped of leading and trailing whitespace
    (docs/design.md §2), in the blocks of ``iter_blocks``: lists of whole lines, or a long
    line's ``(piece, ends_line)`` pairs (``READ_CHUNK`` bytes or so each; the last flagged)."""
    for src in srcs:
        strip = _Stripper(drop_empty=True)
        for block in iter_blocks(src, errors=settings.encoding_errors, stats=decode):
            if isinstance(block, list):
                lines = [ln for ln in map(str.strip, block) if ln]
                if lines:
                    yield lines
            else:
                yield from strip.feed(*block)


class _Stripper:
    """``str.strip`` of lines given in pieces. Only whitespace is held back between pieces."""

    def __init__(self, drop_empty: bool) -> None:
        self.drop_empty = drop_empty
        self.started = False  # the line's first non-space character was seen
        self.pending = ""  # whitespace at the end of the pieces so far: kept if text follows

    def feed(self, piece: str, ends_line: bool) -> list[tuple[str, bool]]:
        out: list[tuple[str, bool]] = []
        if not self.started:
            piece = piece.lstrip()
            self.started = bool(piece)
        body = piece.rstrip()
        if body:
            out.append((self.pending + body, False))
            self.pending = piece[len(body) :]
        else:
            self.pending += piece
        if ends_line:
            if self.started or not self.drop_empty:
                out.append(("", True))
            self.started, self.pending = False, ""
        return out


def _split_bounds(source: CorpusSource, settings: IngestSettings) -> tuple[int, int]:
    # a counting pass: its decode statistics are not kept (pass 2 counts replacements once)
    blocks = _clean_blocks(source.parts["all"], settings, DecodeStats())
    n = sum(len(b) if isinstance(b, list) else b[1] for b in blocks)
    if n == 0:
        raise CorpusError(
            f"corpus {source.name!r} has no non-empty line ({_first_source(source)} is empty or "
            "blank); give a text file with content"
        )
    a, b = settings.split_fractions
    if int(a * n) == 0:
        raise CorpusError(
            f"corpus {source.name!r} has only {n} non-empty line(s) ({_first_source(source)}): the "
            "80/10/10 split by lines leaves no training line; give more lines, "
            "or --train and --test files"
        )
    return int(a * n), int(b * n)


def _split_blocks(
    source: CorpusSource,
    settings: IngestSettings,
    bounds: tuple[int, int] | None,
    decode: DecodeStats,
) -> Iterator[tuple[str, Block]]:
    """(split, block of ``_clean_blocks``) in corpus order: contiguous runs of lines for a
    single text (cut at the split bounds, which count lines), else each split's own files."""
    if bounds is None:
        for split in SPLITS:
            if split in source.parts:
                for block in _clean_blocks(source.parts[split], settings, decode):
                    yield split, block
        return
    i = 0  # index of the current line
    for block in _clean_blocks(source.parts["all"], settings, decode):
        if not isinstance(block, list):
            yield _split_of(i, bounds), block
            i += block[1]
            continue
        while block:
            split = _split_of(i, bounds)
            end = bounds[0] if split == "train" else bounds[1] if split == "valid" else 1 << 62
            take = block[: end - i]
            yield split, take
            i += len(take)
            block = block[len(take) :]


def _split_of(line: int, bounds: tuple[int, int]) -> str:
    return "train" if line < bounds[0] else "valid" if line < bounds[1] else "test"


# Whitespace to str.split (Unicode's separators FS, GS, RS and US) that Arrow's ASCII split
# keeps inside a word
_SEPARATORS = re.compile("[\x1c-\x1f]")


def _arrow_words(lines: list[str], text: str) -> pa.ListArray | None:
    """Each of ``lines`` split on whitespace by Arrow (C++, no Python string per word), where
    that is exactly ``str.split``: ``text`` (the lines joined) is ASCII and holds none of
    \\x1c-\\x1f, which Python counts as whitespace and Arrow does not. None otherwise: the
    caller splits in Python."""
    if not text.isascii() or _SEPARATORS.search(text):
        return None
    return pc.ascii_split_whitespace(pa.array(lines, type=pa.string()))


@dataclass(frozen=True)
class _EncodedLines:
    """A block of Arrow-split lines (``_arrow_words``), dictionary-encoded: its distinct words
    in order of first appearance, each word's index among them, the words of each line; and
    the block's line count and UTF-8 bytes (a newline per line), as the split statistics
    count them."""

    dictionary: pa.Array
    indices: np.ndarray
    lengths: np.ndarray
    lines: int
    bytes: int

    @classmethod
    def of(cls, words: pa.ListArray, lines: int, nbytes: int) -> _EncodedLines:
        enc = pc.dictionary_encode(words.flatten())
        return cls(
            enc.dictionary,
            enc.indices.to_numpy(zero_copy_only=False),
            words.value_lengths().to_numpy(zero_copy_only=False),
            lines,
            nbytes,
        )

    @property
    def nbytes(self) -> int:
        return int(self.dictionary.nbytes + self.indices.nbytes + self.lengths.nbytes)

    def counts(self) -> np.ndarray:
        """How often each distinct word occurs."""
        return np.bincount(self.indices, minlength=len(self.dictionary))

    def ids(self, index: dict[str, int]) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(ids, words per line, distinct words): each distinct word of the block looked up
        once (a block has ~1 M words, 50 k distinct of a 200 k vocabulary at 20 M Zipf
        tokens)."""
        distinct = self.dictionary.to_pylist()
        lookup = np.fromiter(map(index.get, distinct, repeat(UNK)), np.int32, len(distinct))
        return lookup[self.indices], self.lengths, distinct


KEEP_TRAIN_BYTES = 256 << 20
"""Pass 1 keeps the encoded training blocks up to this size (about 4 bytes a token: 64 M
tokens), so that pass 2 neither splits nor encodes them again, nor reads the training files
again where they are files of their own (PTB's ingest, best of 10: 0.23 -> 0.16 s from its own
split files, 0.20 -> 0.15 s from one text)."""


class _TrainBlocks:
    """The training blocks of pass 1, kept while every one went the Arrow way and all of them
    fit :data:`KEEP_TRAIN_BYTES`; ``blocks`` is None otherwise (pass 2 reads them again)."""

    def __init__(self) -> None:
        self.blocks: list[_EncodedLines] | None = []
        self._bytes = 0

    def add(self, enc: _EncodedLines) -> None:
        if self.blocks is None:
            return
        self._bytes += enc.nbytes
        if self._bytes > KEEP_TRAIN_BYTES:
            self.drop()
        else:
            self.blocks.append(enc)

    def drop(self) -> None:
        self.blocks = None


def _pass2_blocks(
    source: CorpusSource,
    settings: IngestSettings,
    bounds: tuple[int, int] | None,
    decode: DecodeStats,
    kept: list[_EncodedLines] | None,
    train_decode: DecodeStats,
) -> Iterator[tuple[str, Block | _EncodedLines]]:
    """The blocks of every split in corpus order, as ``_split_blocks`` gives them, the
    training ones from ``kept`` where pass 1 kept them all. Own training files are then not
    read again (their decode statistics, ``train_decode``, are pass 1's); a single text is, for
    its other splits' lines, and its training blocks come out the same as in pass 1."""
    if kept is None:
        yield from _split_blocks(source, settings, bounds, decode)
        return
    kept.reverse()  # each block let go once written
    if bounds is None:
        decode.add(train_decode)
        while kept:
            yield "train", kept.pop()
        for split in SPLITS[1:]:
            for block in _clean_blocks(source.parts.get(split, ()), settings, decode):
                yield split, block
        return
    for split, block in _split_blocks(source, settings, bounds, decode):
        yield split, kept.pop() if split == "train" else block


def _python_ids(
    lines: list[str], tokens: _LineTokens, index: dict[str, int]
) -> tuple[np.ndarray, np.ndarray, Iterable[str]]:
    """(ids, tokens per line, the tokens) of whole lines tokenized in Python."""
    line_tokens = tokens.lines(lines)
    flat = chain.from_iterable(line_tokens)
    ids = np.fromiter(map(index.get, flat, repeat(UNK)), np.int32)
    lengths = np.fromiter(map(len, line_tokens), np.int64, len(line_tokens))
    return ids, lengths, chain.from_iterable(line_tokens)


class _ArrowCounts:
    """Word counts of the Arrow blocks (``_arrow_words``), summed in Arrow and handed to the
    Python counter in the order the words first appeared (the vocabulary's tie order) whenever a
    block goes the Python way, and at the end: one dict update instead of a Python step per
    distinct word of every block (3.7 s of a 20 M-token ingest)."""

    FOLD_ROWS = 1 << 22  # partial counts kept before they are summed into one table

    def __init__(self, counter: Counter[str]) -> None:
        self.counter = counter
        self.parts: list[pa.Table] = []
        self.rows = 0
        self.blocks = 0

    def add(self, distinct: pa.Array, counts: np.ndarray) -> None:
        """One block's ``distinct`` words, in order of first appearance, and their counts."""
        # where each word first appeared: the block's number, then its place in the block
        first = np.arange(len(distinct), dtype=np.int64) + (self.blocks << 32)
        self.blocks += 1
        n = counts.astype(np.int64)
        self.parts.append(pa.table({"w": distinct, "n": n, "f": first}))
        self.rows += len(distinct)
        if self.rows >= self.FOLD_ROWS:
            self._fold()

    def _fold(self) -> None:
        if len(self.parts) > 1:
            # Arrow's grouping does not keep the groups in order: sort them by first appearance
            grouped = pa.concat_tables(self.parts).group_by("w", use_threads=False)
            t = grouped.aggregate([("n", "sum"), ("f", "min")])
            t = t.sort_by("f_min").rename_columns({"n_sum": "n", "f_min": "f"})
            self.parts = [t.select(["w", "n", "f"])]
            self.rows = t.num_rows

    def flush(self) -> None:
        if not self.parts:
            return
        self._fold()
        t = self.parts[0]
        counts = dict(zip(t.column("w").to_pylist(), t.column("n").to_pylist(), strict=True))
        self.counter.update(counts)
        self.parts, self.rows = [], 0


class _LineTokens:
    """Tokens of lines given in pieces, exactly as if each line were tokenized whole: the
    normalizer never sees a run of non-letters cut in two, the line is stripped again after
    normalizing (as before), and word tokenizers never see a token cut in two (text is handed
    on up to its last whitespace)."""

    def __init__(self, settings: IngestSettings, tokenize: Tokenizer | None = None) -> None:
        self._tokenize = tokenize or get_tokenizer(settings.tokenizer)
        self._normalize = get_normalizer(settings.normalize)
        self._normalizing = settings.normalize != "none"
        self._cut_at_space = settings.tokenizer != "char"
        # BPE's pre-tokenization keeps a word's leading space with it (``Ġtime``): cut before
        # the whitespace, not after
        self._cut_before_space = settings.tokenizer in LEARNED_TOKENIZERS
        self._strip = _Stripper(drop_empty=False)
        self._raw = ""  # the trailing run of non-letters of the pieces so far, not normalized yet
        self._text = ""  # text after the last whitespace, not tokenized yet

    def lines(self, lines: list[str]) -> list[list[str]]:
        """The tokens of each of ``lines``, whole stripped lines (as ``feed`` gives them for
        the line in pieces)."""
        if self._normalizing:
            lines = [self._normalize(ln).strip() for ln in lines]
        tokenize = self._tokenize
        return [tokenize(ln) if ln else [] for ln in lines]

    def feed(self, piece: str, ends_line: bool) -> Iterator[list[str]]:
        """Token lists of ``piece`` (one line's next piece; ``ends_line`` on its last)."""
        if not self._normalizing:
            yield from self._tokens(piece, ends_line)
            return
        text = self._raw + piece
        tail = None if ends_line else _NON_LETTER_TAIL.search(text)
        cut = tail.start() if tail else len(text)
        self._raw = text[cut:][:1]  # any run of non-letters normalizes to one space: keep one
        for stripped, end in self._strip.feed(self._normalize(text[:cut]), ends_line):
            yield from self._tokens(stripped, end)

    def _tokens(self, text: str, ends_line: bool) -> Iterator[list[str]]:
        if self._cut_at_space:
            text = self._text + text
            cut = len(text)
            if not ends_line:
                m = _LAST_SPACE.search(text)
                cut = (m.start() if self._cut_before_space else m.end()) if m else 0
            self._text = text[cut:]
            text = text[:cut]
        if text:
            yield self._tokenize(text)


_NON_LETTER_TAIL = re.compile(r"[^A-Za-z]+\Z")
_LAST_SPACE = re.compile(r"\s(?=\S*\Z)")


class _SplitWriter:
    """Buffers one split's ids and writes them as row groups of a Parquet file, renamed into
    place on close (never visible half-written)."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self._ctx = atomic_path(dest)
        self._tmp = self._ctx.__enter__()
        # pos and sent ascend: delta-encoded, no dictionary (store.DELTA)
        self._writer = pq.ParquetWriter(
            self._tmp,
            CONTENT_SCHEMAS["tokens"],
            compression="zstd",
            use_dictionary=["id"],
            column_encoding={"pos": DELTA, "sent": DELTA},
        )
        self._buf = array("i")
        self._eos_at: list[int] = []  # buffer positions of the sentence ends (add_eos)
        self.tokens = 0
        self._sent = 0  # sentences ended so far
        self._sent_flushed = 0  # sentences ended before the buffer's first token

    def add(self, ids: list[int]) -> None:
        self._buf.extend(ids)
        if len(self._buf) >= BATCH_TOKENS:
            self._flush()

    def add_lines(self, ids: np.ndarray, lengths: np.ndarray) -> None:
        """The ids of whole lines, ``lengths[i]`` of line i; each line is ended by ``EOS``."""
        # each line's EOS, counting from the block's first id
        ends = np.cumsum(lengths.astype(np.int64) + 1) - 1
        block = np.full(int(ends[-1]) + 1, EOS, dtype=np.int32)
        mask = np.ones(len(block), dtype=bool)
        mask[ends] = False
        block[mask] = ids
        self._eos_at.extend((ends + len(self._buf)).tolist())
        self._buf.frombytes(block.tobytes())
        self._sent += len(lengths)
        if len(self._buf) >= BATCH_TOKENS:
            self._flush()

    def add_eos(self) -> None:
        self._eos_at.append(len(self._buf))
        self._buf.append(EOS)
        self._sent += 1

    def _flush(self) -> None:
        if not self._buf:
            return
        ids = np.frombuffer(self._buf, dtype=np.int32)
        pos = np.arange(self.tokens, self.tokens + len(ids), dtype=np.int64)
        # each token's sentence: the sentences ended before it (its own </s> belongs to it)
        ends = np.zeros(len(ids) + 1, dtype=np.int64)
        ends[np.asarray(self._eos_at, dtype=np.int64) + 1] = 1
        sent = self._sent_flushed + np.cumsum(ends[:-1])
        self._writer.write_table(
            pa.table({"pos": pos, "sent": sent, "id": ids}, schema=CONTENT_SCHEMAS["tokens"])
        )
        self.tokens += len(ids)
        self._sent_flushed = self._sent
        self._buf = array("i")
        self._eos_at = []

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
    return Vocab(
        tokens=tuple(t.column("token").to_pylist()), counts=tuple(t.column("count").to_pylist())
    )


def load_stream(path: str | Path) -> np.ndarray:
    """A split's token stream (int32 ids, each sentence ended by EOS)."""
    return pq.read_table(path, columns=["id"]).column("id").to_numpy().astype(np.int32, copy=False)
