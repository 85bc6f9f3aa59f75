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
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lmpipe.lm.errors import ModelError
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
    """Rows of the order-n n-grams that go into the file."""
    if n > 1:
        return np.arange(model.trie.size(n))
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

    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            header = ["", "\\data\\"] + [f"ngram {n}={r}" for n, r in enumerate(sizes, 1)]
            f.write(("\n".join(header) + "\n").encode())
            for n in range(1, model.order + 1):
                f.write(f"\n\\{n}-grams:\n".encode())
                section(f, n)
            f.write(b"\n\\end\\\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_order(f, model: BackoffModel, n: int, rows: np.ndarray, strings: pa.Array) -> None:
    """Format one section with Arrow string kernels and write its buffer in one go."""
    if rows.size == 0:
        return
    grams = model.trie.grams(n)[rows]
    backoff = model.tables.backoff[n - 1][rows] if n < model.order else None
    write_lines(f, strings, grams, model.tables.logp[n - 1][rows], backoff)


@dataclass(frozen=True)
class ArpaModel:
    """A model read from an ARPA file. ``tokens[i]`` is the string of id i; ids 0, 1, 2 are
    ``<unk>``, ``<s>``, ``</s>`` whatever the file's order."""

    order: int
    tokens: tuple[str, ...]
    trie: SuffixTrie
    tables: BackoffTables
    blanks: int = 0  # suffixes the file lacked, filled in (load_arpa)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {t: i for i, t in enumerate(self.tokens)})

    def ids(self, words: Iterable[str]) -> list[int]:
        """Ids of words, ``<unk>`` (0) for words the model does not know."""
        get = self._index.get  # type: ignore[attr-defined]
        return [get(w, UNK) for w in words]

    def encode(self, sentences: Iterable[str | Sequence[str]]) -> np.ndarray:
        """The stream of sentences (strings are split as ``query`` splits a line)."""
        return self.encode_lines(sentences)[0]

    def encode_lines(
        self, sentences: Iterable[str | Sequence[str]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(stream, ends): the ids of every word and one ``</s>`` per sentence, and which
        positions end a sentence (the appended ``</s>``, not a literal one inside a line)."""
        out: list[int] = []
        ends: list[int] = []
        for sent in sentences:
            words = [w for w in _QUERY_SPLIT.split(sent) if w] if isinstance(sent, str) else sent
            out.extend(self.ids(words))
            ends.append(len(out))
            out.append(EOS)
        mask = np.zeros(len(out), dtype=bool)
        mask[ends] = True
        return np.asarray(out, dtype=np.int32), mask

    def score(self, sentences: Iterable[str | Sequence[str]]) -> TokenScores:
        """Score sentences as ``query`` does: every word and one ``</s>`` per sentence, words
        unknown to the model as ``<unk>`` (flagged OOV), a literal ``</s>`` or ``<s>`` inside a
        line as a word whose state carries on; exact KenLM totals included."""
        return self.score_stream(*self.encode_lines(sentences))

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
    blank = _add_blanks(grams, values)
    keys = [np.arange(width, dtype=np.int64)]
    parents = [np.zeros(width, dtype=np.int64)]
    toks = [np.arange(width, dtype=np.int32)]
    contexts = [np.zeros(width, dtype=np.int64)]
    for n in range(2, order + 1):
        ids = grams[n - 1].astype(np.int64)
        lp, bo = values[n - 1]
        suffix = ids[:, n - 1].copy()
        for k in range(2, n):
            suffix = find_rows(keys[k - 1], width, suffix, ids[:, n - k])
        key = suffix * width + ids[:, 0]
        by_key = np.argsort(key, kind="stable")
        keys.append(key[by_key])
        parents.append(suffix[by_key])
        toks.append(ids[by_key, 0].astype(np.int32))
        first = toks[-1].astype(np.int64)
        contexts.append(
            first if n == 2 else find_rows(keys[n - 2], width, contexts[n - 2][parents[-1]], first)
        )
        lp, bo, is_blank = lp[by_key], bo[by_key], blank[n - 1][by_key]
        if is_blank.any():  # lower orders are complete: fill in what backing off gives
            ctx = contexts[-1][is_blank]
            ctx_bo = np.where(ctx >= 0, backoff[n - 2][np.maximum(ctx, 0)], np.float32(0))
            lp[is_blank] = logp[n - 2][parents[-1][is_blank]] + ctx_bo
        logp.append(lp)
        backoff.append(bo)
    counts = tuple(np.zeros(k.size, dtype=np.int64) for k in keys)
    trie = SuffixTrie(width, tuple(keys), tuple(parents), tuple(toks), tuple(contexts), counts)
    tables = BackoffTables(logp=tuple(logp), backoff=tuple(backoff[: order - 1]))
    n_blank = int(sum(b.sum() for b in blank))
    return ArpaModel(order=order, tokens=tokens, trie=trie, tables=tables, blanks=n_blank)


def _add_blanks(
    grams: list[np.ndarray], values: list[tuple[np.ndarray, np.ndarray]]
) -> list[np.ndarray]:
    """Append to each order the suffixes that the order above needs and the file lacks (from
    the highest order down, so a blank's own missing suffix is added too), with backoff 0 and
    a probability filled in later; return the blank flags per order."""
    blank = [np.zeros(len(g), dtype=bool) for g in grams]
    for n in range(len(grams), 2, -1):
        need = np.unique(_rows(grams[n - 1][:, 1:]), return_index=True)[1]
        suffixes = grams[n - 1][need, 1:]
        absent = ~np.isin(_rows(suffixes), _rows(grams[n - 2]))
        if not absent.any():
            continue
        add = suffixes[absent]
        grams[n - 2] = np.concatenate([grams[n - 2], add])
        lp, bo = values[n - 2]
        values[n - 2] = (
            np.concatenate([lp, np.full(len(add), np.nan, np.float32)]),
            np.concatenate([bo, np.zeros(len(add), np.float32)]),
        )
        blank[n - 2] = np.concatenate([blank[n - 2], np.ones(len(add), dtype=bool)])
    return blank


def _rows(ids: np.ndarray) -> np.ndarray:
    """Each row of an (M, n) id array as one opaque value (for set operations on rows)."""
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    return ids.view(np.dtype((np.void, 8 * ids.shape[1]))).ravel()


def _read_sections(path: Path) -> list[pa.Array]:
    """The lines of each ``\\n-grams:`` section, checked against the ``\\data\\`` counts."""
    try:
        if path.suffix.lower() == ".gz":
            with gzip.open(path, "rt", encoding="utf-8") as f:
                text = f.read()
        else:
            text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArpaError(f"ARPA file {path} does not exist; check the path") from None
    except IsADirectoryError:
        raise ArpaError(f"{path} is a folder, not an ARPA file; give the model's file") from None
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError) as e:
        raise ArpaError(f"{path} is not a readable ARPA text file ({e}); check the file") from None
    data = text.find("\\data\\")
    if data < 0:
        raise ArpaError(f"{path}: no \\data\\ header")
    expected = [int(m.group(2)) for m in re.finditer(r"^ngram (\d+)\s*=\s*(\d+)", text, re.M)]
    heads = list(re.finditer(r"^\\(\d+)-grams:\s*$", text, re.M))
    end = text.find("\\end\\")
    if not heads or end < 0 or len(heads) != len(expected):
        raise ArpaError(f"{path}: sections do not match the \\data\\ header")
    out = []
    for i, m in enumerate(heads):
        stop = heads[i + 1].start() if i + 1 < len(heads) else end
        lines = [ln for ln in text[m.end() : stop].split("\n") if ln.strip()]
        if len(lines) != expected[i]:
            raise ArpaError(f"{path}: {len(lines)} {i + 1}-grams, the header says {expected[i]}")
        out.append(pa.array(lines, type=pa.string()))
    return out


def _parse_section(lines: pa.Array, n: int) -> tuple[list[pa.Array], np.ndarray, np.ndarray]:
    """(one string column per word position, log10 p, log10 backoff) of an order-n section;
    fields are separated by tabs or spaces, the backoff may be absent (0)."""
    parts = pc.split_pattern_regex(pc.utf8_trim_whitespace(lines), r"[ \t]+")
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
