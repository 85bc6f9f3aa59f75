"""ARPA files: export of backoff-form models, import and scoring of any ARPA model.

Export writes what KenLM writes (docs/kenlm-mkn.md §6): per order ``log10 p <TAB> words [<TAB>
log10 backoff]``, values as float32 in their shortest round-trip decimal form (Arrow's float
formatting), so ``kenlm.Model`` reads back exactly our float32 tables. Unigrams are ``<unk>``,
``<s>``, ``</s>`` and every token seen in training (KenLM's unigram set); ``<pad>`` and unseen
vocabulary entries are left out.

Import builds the same suffix trie from the file, so an ARPA model is scored by the very
procedure of ``query`` (§7) and its perplexity equals KenLM's.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lmpipe.lm.errors import ModelError
from lmpipe.lm.fileio import atomic_path
from lmpipe.lm.metrics import TokenScores
from lmpipe.lm.ngram.arpa_lines import unigram_entries, write_lines
from lmpipe.lm.ngram.model import BackoffModel
from lmpipe.lm.ngram.scoring import BackoffTables, score_backoff
from lmpipe.lm.ngram.trie import SuffixTrie, find_rows
from lmpipe.lm.vocab import EOS, UNK

if TYPE_CHECKING:
    from lmpipe.lm.ngram.mkn_duckdb import DuckdbMknModel

SPECIALS = ("<unk>", "<s>", "</s>")
MISSING_UNK_LOG10 = -100.0
"""What KenLM substitutes for log10 p(<unk>) when an ARPA file lacks ``<unk>``."""
_QUERY_SPLIT = re.compile(r"[ \t\v\f\r]+")


class ArpaError(ModelError):
    """An ARPA file that cannot be read as one."""


def _entries(model: BackoffModel, n: int) -> np.ndarray:
    """Rows of the order-n n-grams that go into the file (a pruned model's blanks do not, as
    SRILM writes its pruned models: KenLM's loader and :func:`load_arpa` put them back)."""
    if n > 1:
        blanks = model.details.get("pruning", {}).get("blanks")
        return np.arange(model.trie.size(n)) if blanks is None else np.flatnonzero(~blanks[n - 1])
    return unigram_entries(model.trie.count[0] > 0)


def write_arpa(
    model: BackoffModel | DuckdbMknModel, path: str | Path, tokens: Sequence[str]
) -> None:
    """Write ``model`` as an ARPA file; ``tokens[i]`` is the string of id i (a ``Vocab``'s
    ``tokens``). Written to a temporary file and renamed, so the file appears complete or not
    at all. An out-of-core model (:mod:`lm.ngram.mkn_duckdb`) is streamed from its tables."""
    out_of_core = hasattr(model, "write_arpa_section")  # DuckdbMknModel, without importing it
    if not (out_of_core or isinstance(model, BackoffModel)):
        raise TypeError(f"{model.method} is not expressible in backoff form: no ARPA export")
    if len(tokens) < model.vocab_size:
        raise ValueError(f"{len(tokens)} token strings for a vocabulary of {model.vocab_size}")
    if any(not t or _QUERY_SPLIT.search(t) or "\n" in t for t in tokens):
        raise ArpaError("ARPA words must be non-empty and contain no whitespace")
    strings = pa.array(list(tokens[: model.vocab_size]), type=pa.string())
    if out_of_core:
        sizes = model.arpa_sizes()

        def section(f, n: int) -> None:
            model.write_arpa_section(f, n, strings)
    else:
        rows = [_entries(model, n) for n in range(1, model.order + 1)]
        sizes = [r.size for r in rows]

        def section(f, n: int) -> None:
            _write_order(f, model, n, rows[n - 1], strings)

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        header = ["", "\\data\\"] + [f"ngram {n}={r}" for n, r in enumerate(sizes, 1)]
        f.write(("\n".join(header) + "\n").encode())
        for n in range(1, model.order + 1):
            f.write(f"\n\\{n}-grams:\n".encode())
            section(f, n)
        f.write(b"\n\\end\\\n")


def _write_order(f, model: BackoffModel, n: int, rows: np.ndarray, strings: pa.Array) -> None:
    """Format one section with Arrow string kernels and write its buffer in one go."""
    if rows.size == 0:
        return
    grams = model.trie.grams(n)[rows]
    backoff = model.tables.backoff[n - 1][rows] if n < model.order else None
    write_lines(f, strings, grams, model.tables.logp[n - 1][rows], backoff)


class WordEncoding:
    """Text to a model's ids, as ``query`` reads a line; for a model class with ``tokens``
    (``tokens[i]`` the string of id i; ids 0, 1, 2 are ``<unk>``, ``<s>``, ``</s>``) and a
    ``score_stream``."""

    tokens: tuple[str, ...]

    def score_stream(self, stream: np.ndarray, ends: np.ndarray | None = None) -> TokenScores:
        raise NotImplementedError

    @cached_property
    def _index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tokens)}

    @cached_property
    def vocab_array(self) -> pa.Array:
        """The tokens as an Arrow array (the value set that text is looked up in)."""
        return pa.array(self.tokens, type=pa.large_string())

    def ids(self, words: Iterable[str]) -> list[int]:
        """Ids of words, ``<unk>`` (0) for words the model does not know."""
        get = self._index.get
        return [get(w, UNK) for w in words]

    def encode(self, sentences: Iterable[str | Sequence[str]]) -> np.ndarray:
        """The stream of sentences (strings are split as ``query`` splits a line)."""
        return self.encode_lines(sentences)[0]

    def encode_lines(
        self, sentences: Iterable[str | Sequence[str]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(stream, ends): the ids of every word and one ``</s>`` per sentence, and which
        positions end a sentence (the appended ``</s>``, not a literal one inside a line)."""
        sentences = list(sentences)
        lines = _as_strings(sentences)
        if lines is not None:
            # split on ASCII whitespace (as the kenlm module's bytes.split()) and looked up by
            # Arrow: Python's per-word dict lookups cost more than the scoring at PTB's size
            parts = pc.ascii_split_whitespace(lines)
            words = pc.list_flatten(parts)
            lengths = pc.list_value_length(parts).to_numpy(zero_copy_only=False).astype(np.int64)
            empty = pc.equal(pc.binary_length(words), 0)  # bytes: no UTF-8 decoding
            if pc.any(empty).as_py():  # a line's leading or trailing whitespace
                lengths -= _per_line(empty, lengths)
                words = words.filter(pc.invert(empty))
            ids = pc.index_in(words, value_set=self.vocab_array)
            ids = pc.fill_null(ids, UNK).to_numpy(zero_copy_only=False).astype(np.int32)
        else:
            lists = [self.ids(s) for s in sentences]
            lengths = np.asarray([len(x) for x in lists], dtype=np.int64)
            ids = np.asarray([i for x in lists for i in x], dtype=np.int32)
        ends = np.cumsum(lengths + 1) - 1  # each line's </s>, after its words
        out = np.empty(int(lengths.sum()) + len(sentences), dtype=np.int32)
        mask = np.zeros(out.size, dtype=bool)
        mask[ends] = True
        out[mask] = EOS
        out[~mask] = ids
        return out, mask

    def score(self, sentences: Iterable[str | Sequence[str]]) -> TokenScores:
        """Score sentences as ``query`` does: every word and one ``</s>`` per sentence, words
        unknown to the model as ``<unk>`` (flagged OOV), a literal ``</s>`` or ``<s>`` inside a
        line as a word whose state carries on; exact KenLM totals included."""
        return self.score_stream(*self.encode_lines(sentences))


@dataclass(frozen=True)
class ArpaModel(WordEncoding):
    """A model read from an ARPA file: its suffix trie and backoff tables."""

    order: int
    tokens: tuple[str, ...]
    trie: SuffixTrie
    tables: BackoffTables
    blanks: int = 0  # suffixes the file lacked, filled in (load_arpa)

    def score_stream(self, stream: np.ndarray, ends: np.ndarray | None = None) -> TokenScores:
        """Score a stream of this model's ids; ``ends`` marks the sentence ends (default: every
        ``</s>``)."""
        return score_backoff(
            self.trie, self.tables, stream, kenlm_sums=True, validate=False, ends=ends
        )

    @property
    def size(self) -> int:
        """The n-grams of the file (the blanks filled in are not counted)."""
        return sum(self.trie.size(n) for n in range(1, self.order + 1)) - self.blanks


def _as_strings(sentences: list) -> pa.Array | None:
    """The sentences as an Arrow string array when every one is a ``str``, else ``None`` (word
    lists). Arrow's conversion refuses anything else, which is cheaper than asking each item."""
    try:
        lines = pa.array(sentences, type=pa.large_string(), from_pandas=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    # Arrow also takes bytes (and None, as a null): those are not text lines here
    if lines.null_count or (sentences and not isinstance(sentences[0], str)):
        return None
    return lines


def _per_line(flags: pa.Array, lengths: np.ndarray) -> np.ndarray:
    """How many of each line's split pieces are flagged (``lengths``: pieces per line)."""
    if lengths.size == 0:
        return lengths
    f = flags.to_numpy(zero_copy_only=False).astype(np.int64)
    total = np.concatenate(([0], np.cumsum(f)))
    bounds = np.concatenate(([0], np.cumsum(lengths)))
    return total[bounds[1:]] - total[bounds[:-1]]


def load_arpa(path: str | Path) -> ArpaModel:
    """Read an ARPA file (KenLM, SRILM or ours; ``.gz`` fine). Values are kept as float32, as
    KenLM keeps them.

    An n-gram whose suffix (the n-gram without its first word) is missing from the file, as in
    SRILM's pruned models, gets the suffix as a *blank*, as KenLM's loader does
    (``search_hashed.cc``: ``FindLower``/``AdjustLower``): its probability is what backing off
    gives, p(suffix) = bo(context of the suffix) + p(suffix of the suffix), added in float32
    from the longest n-gram present, and its backoff 0. So every file KenLM loads scores here as
    KenLM scores it."""
    sections = _read_sections(Path(path))
    order = len(sections)
    uni_cols, logp1, bo1 = _parse_section(sections[0], 1)
    words = uni_cols[0].to_pylist()
    if len(set(words)) != len(words):
        raise ArpaError("duplicate unigrams")
    if "<unk>" not in words:
        words.append("<unk>")
        logp1 = np.append(logp1, np.float32(MISSING_UNK_LOG10))
        bo1 = np.append(bo1, np.float32(0.0))
    missing = [s for s in SPECIALS[1:] if s not in words]
    if missing:
        raise ArpaError(f"the unigrams lack {', '.join(missing)}")
    tokens = (*SPECIALS, *(w for w in words if w not in SPECIALS))
    index = {t: i for i, t in enumerate(tokens)}
    width = len(tokens)
    perm = np.asarray([index[w] for w in words], dtype=np.int64)
    logp = [np.empty(width, np.float32)]
    backoff = [np.zeros(width, np.float32)]
    logp[0][perm] = logp1
    backoff[0][perm] = bo1
    vocab = pa.array(list(tokens), type=pa.string())
    grams: list[np.ndarray] = [np.arange(width, dtype=np.int64)[:, None]]
    values: list[tuple[np.ndarray, np.ndarray]] = [(logp[0], backoff[0])]
    for n in range(2, order + 1):
        cols, lp, bo = _parse_section(sections[n - 1], n)
        found = [pc.index_in(c, value_set=vocab) for c in cols]
        if any(f.null_count for f in found):
            raise ArpaError(f"some {n}-grams use words that are not unigrams")
        grams.append(np.column_stack([f.to_numpy(zero_copy_only=False) for f in found]))
        values.append((lp, bo))
    blank = [np.zeros(len(g), dtype=bool) for g in grams]
    keys = [np.arange(width, dtype=np.int64)]
    parents = [np.zeros(width, dtype=np.int64)]
    toks = [np.arange(width, dtype=np.int32)]
    contexts = [np.zeros(width, dtype=np.int64)]
    n = 2
    while n <= order:  # orders are built upwards; a missing suffix sends the loop one down
        del keys[n - 1 :], parents[n - 1 :], toks[n - 1 :], contexts[n - 1 :]
        del logp[n - 1 :], backoff[n - 1 :]
        ids = grams[n - 1].astype(np.int64)
        suffix = ids[:, n - 1].copy()
        for k in range(2, n):
            suffix = find_rows(keys[k - 1], width, suffix, ids[:, n - k])
        if (suffix < 0).any():  # n >= 3: unigram suffixes always exist
            _add_blanks(grams, values, blank, n - 1, np.unique(ids[suffix < 0, 1:], axis=0))
            n -= 1
            continue
        key = suffix * width + ids[:, 0]
        by_key = np.argsort(key, kind="stable")
        keys.append(key[by_key])
        parents.append(suffix[by_key])
        toks.append(ids[by_key, 0].astype(np.int32))
        first = toks[-1].astype(np.int64)
        contexts.append(
            first if n == 2 else find_rows(keys[n - 2], width, contexts[n - 2][parents[-1]], first)
        )
        lp, bo = values[n - 1]
        lp, bo, is_blank = lp[by_key], bo[by_key], blank[n - 1][by_key]
        if is_blank.any():  # lower orders are complete: fill in what backing off gives
            ctx = contexts[-1][is_blank]
            ctx_bo = np.where(ctx >= 0, backoff[n - 2][np.maximum(ctx, 0)], np.float32(0))
            lp[is_blank] = logp[n - 2][parents[-1][is_blank]] + ctx_bo
        logp.append(lp)
        backoff.append(bo)
        n += 1
    counts = tuple(np.zeros(k.size, dtype=np.int64) for k in keys)
    trie = SuffixTrie(width, tuple(keys), tuple(parents), tuple(toks), tuple(contexts), counts)
    tables = BackoffTables(logp=tuple(logp), backoff=tuple(backoff[: order - 1]))
    n_blank = int(sum(b.sum() for b in blank))
    return ArpaModel(order=order, tokens=tokens, trie=trie, tables=tables, blanks=n_blank)


def _add_blanks(
    grams: list[np.ndarray],
    values: list[tuple[np.ndarray, np.ndarray]],
    blank: list[np.ndarray],
    n: int,
    add: np.ndarray,
) -> None:
    """Append the order-n n-grams ``add`` (suffixes the order above needs and the file lacks)
    as blanks: backoff 0, a probability filled in when order n is built."""
    grams[n - 1] = np.concatenate([grams[n - 1], add.astype(grams[n - 1].dtype)])
    lp, bo = values[n - 1]
    values[n - 1] = (
        np.concatenate([lp, np.full(len(add), np.nan, np.float32)]),
        np.concatenate([bo, np.zeros(len(add), np.float32)]),
    )
    blank[n - 1] = np.concatenate([blank[n - 1], np.ones(len(add), dtype=bool)])


def _read_sections(path: Path) -> list[pa.Array]:
    """The lines of each ``\\n-grams:`` section, checked against the ``\\data\\`` counts. The
    text is cut into lines by Arrow (not Python), which matters at tens of millions of lines."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":  # gzip's magic, whatever the file is called
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise ArpaError(f"ARPA file {path} does not exist; check the path") from None
    except IsADirectoryError:
        raise ArpaError(f"{path} is a folder, not an ARPA file; give the model's file") from None
    except (gzip.BadGzipFile, EOFError) as e:
        raise ArpaError(f"{path} is not a readable ARPA text file ({e}); check the file") from None
    data = raw.find(b"\\data\\")
    if data < 0:
        raise ArpaError(f"{path}: no \\data\\ header")
    first = raw.find(b"-grams:", data)
    head = raw[data : first if first >= 0 else len(raw)].decode("utf-8", errors="replace")
    expected = [int(m.group(2)) for m in re.finditer(r"^ngram (\d+)\s*=\s*(\d+)", head, re.M)]
    heads = _section_heads(raw, data)
    end = raw.find(b"\\end\\")
    if not heads or end < 0 or len(heads) != len(expected):
        raise ArpaError(f"{path}: sections do not match the \\data\\ header")
    out = []
    for i, (_, body) in enumerate(heads):
        stop = heads[i + 1][0] if i + 1 < len(heads) else end
        try:
            text = pa.array([raw[body:stop]], type=pa.large_binary()).cast(pa.large_string())
        except pa.ArrowInvalid:
            raise ArpaError(f"{path}: its {i + 1}-grams are not UTF-8; check the file") from None
        lines = pc.split_pattern(text, "\n").flatten()
        lines = lines.filter(pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(lines)), 0))
        if len(lines) != expected[i]:
            raise ArpaError(f"{path}: {len(lines)} {i + 1}-grams, the header says {expected[i]}")
        out.append(lines)
    return out


def _section_heads(raw: bytes, start: int) -> list[tuple[int, int]]:
    """(start of the line, start of the body) of every ``\\N-grams:`` line after ``start``,
    found with ``bytes.find`` (a regex over the whole file costs seconds at PTB scale)."""
    out = []
    at = raw.find(b"-grams:", start)
    while at >= 0:
        line = raw.rfind(b"\n", 0, at) + 1
        eol = raw.find(b"\n", at)
        eol = len(raw) if eol < 0 else eol
        if re.fullmatch(rb"\\\d+-grams:[ \t\r]*", raw[line:eol]):
            out.append((line, eol))
        at = raw.find(b"-grams:", eol)
    return out


def _parse_section(lines: pa.Array, n: int) -> tuple[list[pa.Array], np.ndarray, np.ndarray]:
    """(one string column per word position, log10 p, log10 backoff) of an order-n section;
    fields are separated by tabs or spaces, the backoff may be absent (0)."""
    trimmed = pc.utf8_trim_whitespace(lines)
    # the usual file (KenLM's, SRILM's) has one tab or space between fields: a literal split,
    # several times faster than the regex one that any run of blanks needs
    parts = pc.split_pattern(pc.replace_substring(trimmed, "\t", " "), " ")
    lengths = pc.list_value_length(parts).to_numpy(zero_copy_only=False)
    if ((lengths != n + 1) & (lengths != n + 2)).any():
        parts = pc.split_pattern_regex(trimmed, r"[ \t\r]+")
        lengths = pc.list_value_length(parts).to_numpy(zero_copy_only=False)
    if ((lengths != n + 1) & (lengths != n + 2)).any():
        raise ArpaError(f"malformed {n}-gram lines")
    flat = parts.flatten()
    start = np.asarray(parts.offsets)[:-1]
    logp = flat.take(pa.array(start)).cast(pa.float32()).to_numpy(zero_copy_only=False)
    words = [flat.take(pa.array(start + 1 + k)) for k in range(n)]
    backoff = np.zeros(len(lines), dtype=np.float32)
    has = lengths == n + 2
    if has.any():
        backoff[has] = (
            flat.take(pa.array(start[has] + n + 1))
            .cast(pa.float32())
            .to_numpy(zero_copy_only=False)
        )
    return words, logp, backoff
