"""A backoff model in one binary file that loads in no time: the tables a scorer reads,
memory-mapped (KenLM's ``build_binary probing`` idea, in lmpipe's own layout).

Layout (little-endian): the 8-byte magic ``LMPIPEBO``, a uint64 header length, a JSON header
(format version, order, the n-grams of the model, its blanks, the key radix ``width``, the
float type, each order's number of home slots, and per array its name, dtype, shape and byte
offset), then each array at a 64-byte aligned offset. Arrays: the vocabulary as an Arrow
string array's two buffers (int64 offsets, UTF-8 bytes: mapped, not decoded), the unigrams'
log10 p and backoff by word id, and per order n >= 2 the probing hash table of
:mod:`lmpipe.lm.ngram.probing` (key, log10 p, log10 backoff per slot: one memory access per
lookup). Loading maps the file and reads only the header: the pages a scoring touches are read
from disk (or the page cache) as it touches them.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from lmpipe.lm.fileio import atomic_path
from lmpipe.lm.metrics import TokenScores
from lmpipe.lm.ngram.arpa import ArpaError, ArpaModel, WordEncoding
from lmpipe.lm.ngram.probing import ProbingTables, record_dtype, score_probing

MAGIC = b"LMPIPEBO"
VERSION = 2  # 1: the suffix trie and its hash (lmpipe 0.x before the probing tables)
_ALIGN = 64


@dataclass(frozen=True)
class BinaryModel(WordEncoding):
    """A model loaded from a binary file: scores as the :class:`ArpaModel` it was written from
    does, bit for bit."""

    order: int
    vocab: pa.Array  # large_string, over the file's mapping
    tables: ProbingTables
    size: int  # the n-grams of the model (blanks not counted)
    blanks: int = 0

    @property
    def vocab_array(self) -> pa.Array:
        return self.vocab

    @cached_property
    def tokens(self) -> tuple[str, ...]:
        """The words by id, decoded when first asked for (scoring text needs only
        :attr:`vocab_array`)."""
        return tuple(self.vocab.to_pylist())

    def score_stream(self, stream: np.ndarray, ends: np.ndarray | None = None) -> TokenScores:
        """Score a stream of this model's ids; ``ends`` marks the sentence ends (default: every
        ``</s>``)."""
        return score_probing(self.tables, stream, ends, kenlm_sums=True)


def is_binary(path: str | Path) -> bool:
    """Whether ``path`` starts with this format's magic."""
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def write_binary(model: ArpaModel | BinaryModel, path: str | Path) -> None:
    """Write ``model`` (its probing tables built if it has none yet) to ``path``, atomically (a
    temporary file renamed), so the file appears complete or not at all."""
    if isinstance(model, BinaryModel):
        pt = model.tables
    else:
        pt = ProbingTables.build(model.trie, model.tables)
    # a fresh array of its own (offset 0), whose buffers are written as they are
    vocab = pa.array(list(model.tokens), type=pa.large_string())
    arrays: dict[str, np.ndarray] = {
        "vocab_offsets": np.frombuffer(vocab.buffers()[1], dtype=np.int64)[: len(vocab) + 1],
        "vocab_data": np.frombuffer(vocab.buffers()[2] or b"", dtype=np.uint8),
        "logp1": pt.unigram_logp,
        "backoff1": pt.unigram_backoff,
    }
    for n, records in enumerate(pt.records, start=2):
        arrays[f"table{n}"] = records.view(np.uint8)  # the records' bytes, typed on loading
    header: dict[str, Any] = {
        "version": VERSION,
        "order": model.order,
        "size": model.size,
        "blanks": model.blanks,
        "width": pt.width,
        "float": pt.dtype.str,
        "homes": list(pt.homes),
        "arrays": {},
    }
    layout = []
    offset = 0
    for name, a in arrays.items():
        a = np.ascontiguousarray(a)
        layout.append((name, a, offset))
        header["arrays"][name] = {"dtype": a.dtype.str, "shape": list(a.shape), "offset": offset}
        offset += -(-a.nbytes // _ALIGN) * _ALIGN
    head = json.dumps(header, sort_keys=True).encode()
    start = -(-(len(MAGIC) + 8 + len(head)) // _ALIGN) * _ALIGN
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(MAGIC + struct.pack("<Q", len(head)) + head)
        for _, a, off in layout:
            f.seek(start + off)
            f.write(a.tobytes())
        f.truncate(start + offset)


def load_binary(path: str | Path) -> BinaryModel:
    """Map a file written by :func:`write_binary`; nothing but the header is read now."""
    path = Path(path)
    with open(path, "rb") as f:
        if f.read(len(MAGIC)) != MAGIC:
            raise ArpaError(f"{path} is not an lmpipe binary model")
        (size,) = struct.unpack("<Q", f.read(8))
        try:
            header = json.loads(f.read(size))
        except ValueError:
            raise ArpaError(f"{path}: a damaged binary model header; write it again") from None
    if header.get("version") != VERSION:
        raise ArpaError(
            f"{path} is binary model format {header.get('version')}, this lmpipe reads "
            f"{VERSION}: write it again from the ARPA file"
        )
    start = -(-(len(MAGIC) + 8 + size) // _ALIGN) * _ALIGN
    end = os.path.getsize(path)
    with open(path, "rb") as f:
        # plain arrays over one read-only mapping (np.memmap's per-index wrapping cost a third
        # of a PTB scoring); the mapping lives as long as any array over it
        # (lazily: MAP_POPULATE, as KenLM's default load, only moved PTB's page faults from
        # scoring into loading, and a short text on a large model touches few pages)
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)

    def array(name: str, records: np.dtype | None = None) -> np.ndarray:
        """The array ``name`` as written, or its bytes read as ``records`` (a 1-d table)."""
        spec = header["arrays"][name]
        stored = np.dtype(spec["dtype"])
        shape = tuple(spec["shape"])
        nbytes = int(np.prod(shape)) * stored.itemsize
        if start + spec["offset"] + nbytes > end:
            raise ArpaError(f"{path} is truncated; write it again")
        dtype = stored if records is None else records
        shape = shape if records is None else (nbytes // records.itemsize,)
        if nbytes == 0:
            return np.empty(shape, dtype=dtype)
        flat = np.frombuffer(
            mapped, dtype=dtype, count=int(np.prod(shape)), offset=start + spec["offset"]
        )
        return flat.reshape(shape)

    order = int(header["order"])
    record = record_dtype(np.dtype(header["float"]))
    tables = ProbingTables(
        width=int(header["width"]),
        unigram_logp=array("logp1"),
        unigram_backoff=array("backoff1"),
        records=tuple(array(f"table{n}", record) for n in range(2, order + 1)),
        homes=tuple(int(h) for h in header["homes"]),
    )
    offsets, data = array("vocab_offsets"), array("vocab_data")
    vocab = pa.LargeStringArray.from_buffers(
        offsets.size - 1, pa.py_buffer(offsets), pa.py_buffer(data)
    )
    return BinaryModel(
        order, vocab, tables, size=int(header["size"]), blanks=int(header.get("blanks", 0))
    )


def load_model(path: str | Path) -> ArpaModel | BinaryModel:
    """An ARPA file (text, ``.gz`` fine) or a binary model, told apart by the magic."""
    if is_binary(path):
        return load_binary(path)
    from lmpipe.lm.ngram.arpa import load_arpa

    return load_arpa(path)
