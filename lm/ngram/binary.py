"""A backoff model in one binary file that loads in no time: the arrays a scorer reads,
memory-mapped (KenLM's ``build_binary`` idea, in lmpipe's own layout).

Layout (little-endian): the 8-byte magic ``LMPIPEBO``, a uint64 header length, a JSON header
(format version, order, width, and per array its name, dtype, shape and byte offset), then each
array at a 64-byte aligned offset. Arrays: the vocabulary (UTF-8 words joined by ``\\n``), and per
order n the suffix trie's ``keys``, ``parent``, ``token`` and ``context`` (lm.ngram.trie), the
hash table of the keys (n >= 2, so scoring builds nothing), ``logp`` and ``backoff`` (float32 as
in the ARPA file, or the model's own precision). Loading maps the file and reads only the
header: the pages a scoring touches are read from disk (or the page cache) as it touches them.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from lmpipe.lm.fileio import atomic_path
from lmpipe.lm.ngram.arpa import ArpaError, ArpaModel
from lmpipe.lm.ngram.scoring import BackoffTables
from lmpipe.lm.ngram.trie import KeyHash, SuffixTrie

MAGIC = b"LMPIPEBO"
VERSION = 1
_ALIGN = 64


def is_binary(path: str | Path) -> bool:
    """Whether ``path`` starts with this format's magic."""
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def write_binary(model: ArpaModel, path: str | Path) -> None:
    """Write ``model`` (hash tables included) to ``path``, atomically (a temporary file
    renamed), so the file appears complete or not at all. Each array is copied once
    (``tobytes``) as it is written."""
    trie = model.trie
    arrays: dict[str, np.ndarray] = {
        "vocab": np.frombuffer("\n".join(model.tokens).encode("utf-8"), dtype=np.uint8)
    }
    for n in range(1, model.order + 1):
        arrays[f"keys{n}"] = trie.keys[n - 1]
        arrays[f"parent{n}"] = trie.parent[n - 1]
        arrays[f"token{n}"] = trie.token[n - 1]
        arrays[f"context{n}"] = trie.context[n - 1]
        arrays[f"logp{n}"] = model.tables.logp[n - 1]
        if n < model.order:
            arrays[f"backoff{n}"] = model.tables.backoff[n - 1]
        if n >= 2:
            h = trie.key_hash(n)
            arrays[f"hash{n}"] = h.table
    header: dict[str, Any] = {
        "version": VERSION,
        "order": model.order,
        "width": trie.width,
        "blanks": model.blanks,
        "bits": {str(n): trie.key_hash(n).bits for n in range(2, model.order + 1)},
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


def load_binary(path: str | Path) -> ArpaModel:
    """Map a file written by :func:`write_binary`; nothing but the header and the vocabulary
    is read now."""
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

    def array(name: str) -> np.ndarray:
        spec = header["arrays"][name]
        shape = tuple(spec["shape"])
        dtype = np.dtype(spec["dtype"])
        nbytes = int(np.prod(shape)) * dtype.itemsize
        if start + spec["offset"] + nbytes > end:
            raise ArpaError(f"{path} is truncated; write it again")
        if nbytes == 0:
            return np.empty(shape, dtype=dtype)
        count = nbytes // dtype.itemsize
        flat = np.frombuffer(mapped, dtype=dtype, count=count, offset=start + spec["offset"])
        return flat.reshape(shape)

    order = int(header["order"])
    orders = range(1, order + 1)
    trie = SuffixTrie(
        int(header["width"]),
        tuple(array(f"keys{n}") for n in orders),
        tuple(array(f"parent{n}") for n in orders),
        tuple(array(f"token{n}") for n in orders),
        tuple(array(f"context{n}") for n in orders),
        # counts are not kept (an ARPA file has none): zeros of the right length, no memory
        tuple(np.broadcast_to(np.int64(0), array(f"keys{n}").shape) for n in orders),
    )
    for n in range(2, order + 1):
        trie._hashes[n] = KeyHash(trie.keys[n - 1], array(f"hash{n}"), int(header["bits"][str(n)]))
    tables = BackoffTables(
        logp=tuple(array(f"logp{n}") for n in orders),
        backoff=tuple(array(f"backoff{n}") for n in range(1, order)),
    )
    tokens = tuple(bytes(array("vocab")).decode("utf-8").split("\n"))
    return ArpaModel(order, tokens, trie, tables, blanks=int(header.get("blanks", 0)))


def load_model(path: str | Path) -> ArpaModel:
    """An ARPA file (text, ``.gz`` fine) or a binary model, told apart by the magic."""
    if is_binary(path):
        return load_binary(path)
    from lmpipe.lm.ngram.arpa import load_arpa

    return load_arpa(path)
