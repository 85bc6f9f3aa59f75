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
    """An ARPA file is malformed or not suffix-closed."""


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

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {t: i for i, t in enumerate(self.tokens)})

    def ids(self, words: Iterable[str]) -> list[int]:
        """Ids of words, ``<unk>`` (0) for words the model does not know."""
        get = self._index.get  # type: ignore[attr-defined]
        return [get(w, UNK) for w in words]

    def encode(self, sentences: Iterable[str | Sequence[str]]) -> np.ndarray:
        """The stream of sentences (strings are split as ``query`` splits a line)."""
        out: list[int] = []
        for sent in sentences:
            words = [w for w in _QUERY_SPLIT.split(sent) if w] if isinstance(sent, str) else sent
            out.extend(self.ids(words))
            out.append(EOS)
        return np.asarray(out, dtype=np.int32)

    def score(self, sentences: Iterable[str | Sequence[str]]) -> TokenScores:
        """Score sentences as ``query`` does: every word and one ``</s>`` per sentence, words
        unknown to the model as ``<unk>`` (flagged OOV); exact KenLM totals included."""
        return self.score_stream(self.encode(sentences))

    def score_stream(self, stream: np.ndarray) -> TokenScores:
        """Score a stream of this model's ids."""
        return score_backoff(self.trie, self.tables, stream, kenlm_sums=True, validate=False)


def load_arpa(path: str | Path) -> ArpaModel:
    """Read an ARPA file (KenLM, SRILM or ours). Values are kept as float32, as KenLM keeps
    them."""
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
    keys = [np.arange(width, dtype=np.int64)]
    parents = [np.zeros(width, dtype=np.int64)]
    toks = [np.arange(width, dtype=np.int32)]
    contexts = [np.zeros(width, dtype=np.int64)]
    vocab = pa.array(list(tokens), type=pa.string())
    for n in range(2, order + 1):
        cols, lp, bo = _parse_section(sections[n - 1], n)
        found = [pc.index_in(c, value_set=vocab) for c in cols]
        if any(f.null_count for f in found):
            raise ArpaError(f"some {n}-grams use words that are not unigrams")
        ids = np.column_stack([f.to_numpy(zero_copy_only=False) for f in found]).astype(np.int64)
        suffix = ids[:, n - 1].copy()
        for k in range(2, n):
            suffix = find_rows(keys[k - 1], width, suffix, ids[:, n - k])
        if (suffix < 0).any():
            raise ArpaError(f"some {n}-grams have no {n - 1}-gram suffix in the file")
        key = suffix * width + ids[:, 0]
        by_key = np.argsort(key, kind="stable")
        keys.append(key[by_key])
        parents.append(suffix[by_key])
        toks.append(ids[by_key, 0].astype(np.int32))
        logp.append(lp[by_key])
        backoff.append(bo[by_key])
        first = toks[-1].astype(np.int64)
        contexts.append(
            first if n == 2 else find_rows(keys[n - 2], width, contexts[n - 2][parents[-1]], first)
        )
    counts = tuple(np.zeros(k.size, dtype=np.int64) for k in keys)
    trie = SuffixTrie(width, tuple(keys), tuple(parents), tuple(toks), tuple(contexts), counts)
    tables = BackoffTables(logp=tuple(logp), backoff=tuple(backoff[: order - 1]))
    return ArpaModel(order=order, tokens=tokens, trie=trie, tables=tables)


def _read_sections(path: Path) -> list[pa.Array]:
    """The lines of each ``\\n-grams:`` section, checked against the ``\\data\\`` counts."""
    text = path.read_text(encoding="utf-8")
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
