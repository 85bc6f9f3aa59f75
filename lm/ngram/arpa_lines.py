"""The lines of an ARPA file, written fast: what both the in-memory writer (:mod:`.arpa`) and the
out-of-core model (:mod:`.mkn_duckdb`) stream into a file."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lmpipe.lm.vocab import BOS, EOS, PAD, UNK

LOG10_ZERO = np.float32(-99.0)
"""What SRILM writes for log10 0; KenLM refuses -inf backoffs (Katz on tiny data has them)."""


def unigram_entries(seen: np.ndarray) -> np.ndarray:
    """Ids of the unigrams that go into the file: ``<unk>``, ``<s>``, ``</s>`` and every id
    seen in training (``seen``: a mask over the vocabulary), never ``<pad>``."""
    keep = seen.copy()
    keep[[UNK, BOS, EOS]] = True
    keep[PAD] = False
    return np.flatnonzero(keep)


def write_lines(
    f: Any, strings: pa.Array, grams: np.ndarray, logp: np.ndarray, backoff: np.ndarray | None
) -> None:
    """Write the ARPA lines ``logp <TAB> words [<TAB> backoff]`` of n-grams given as a (rows, n)
    id array, oldest first, with their log10 values (float32, -inf written as -99)."""
    if len(grams) == 0:
        return
    words = [strings.take(pa.array(grams[:, k])) for k in range(grams.shape[1])]
    logp = np.minimum(logp.astype(np.float32), np.float32(0.0))
    cols = [pa.array(np.maximum(logp, LOG10_ZERO)).cast(pa.string())]
    cols.append(pc.binary_join_element_wise(*words, " ") if len(words) > 1 else words[0])
    if backoff is not None:
        backoff = backoff.astype(np.float32)
        cols.append(pa.array(np.maximum(backoff, LOG10_ZERO)).cast(pa.string()))
    lines = pc.binary_join_element_wise(pc.binary_join_element_wise(*cols, "\t"), "", "\n")
    lines = lines.combine_chunks() if isinstance(lines, pa.ChunkedArray) else lines
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[lines.offset :]
    data = memoryview(lines.buffers()[2])[int(offsets[0]) : int(offsets[len(lines)])]
    f.write(data)
