"""``lmpipe generate``: continue a prefix with a model that a stored run trained."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow.parquet as pq

from lmpipe.lm.errors import ConfigError, LmpipeError, WarehouseError
from lmpipe.lm.ingest import load_vocab
from lmpipe.lm.steps.home import Home
from lmpipe.lm.tokenize import detokenize, get_tokenizer
from lmpipe.lm.vocab import UNK

MAX_LENGTH = 100_000
"""Most tokens one call generates (a sample is built in memory; ask again with the end of the
text as the prefix for more)."""


@dataclass(frozen=True)
class Generated:
    """The prefix and its continuation as text, and the prefix's tokens the model never saw in
    training (read as ``<unk>``), in order of appearance."""

    text: str
    unknown: list[str]


def generate_from_run(
    home: Home,
    run_id: str,
    prefix: str,
    length: int,
    *,
    greedy: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    model: str | None = None,
    corpus: str | None = None,
    seed: int = 0,
) -> Generated:
    from lmpipe.lm import neural

    if length > MAX_LENGTH:
        raise ConfigError(
            f"--length {length} is more than one call generates ({MAX_LENGTH:,} tokens); ask for "
            "less, and continue from the end of the text if you need more"
        )
    if top_k is not None and top_k < 1:
        raise ConfigError(
            f"--top-k must be at least 1 (got {top_k}); leave it out to sample from every token"
        )

    h = home
    wh = h.warehouse
    if run_id not in wh.committed_runs():
        raise WarehouseError(
            f"no completed run {run_id!r} in {wh.root}; "
            'list runs with lmpipe sql "select run_id from runs"'
        )
    res = pq.read_table(wh.run_path("results", run_id)).to_pandas()
    res = res[res["family"] == "neural"]
    if model:
        res = res[res["model"] == model]
    if corpus:
        res = res[res["corpus"] == corpus]
    choices = sorted(
        set(zip(res["corpus"], res["tokenizer"], res["model"], res["model_key"], strict=True))
    )
    if not choices:
        raise LmpipeError(
            f"run {run_id} has no neural model{' ' + model if model else ''}; "
            "pick a run that trained one"
        )
    if len(choices) > 1:
        names = ", ".join(f"{c}/{m}" for c, _, m, _ in choices)
        raise LmpipeError(
            f"run {run_id} trained several models ({names}); choose one with --corpus and --model"
        )
    corpus_name, tokenizer, _, key = choices[0]
    corpora = pq.read_table(wh.run_path("corpora", run_id)).to_pandas()
    row = corpora[(corpora["corpus"] == corpus_name) & (corpora["tokenizer"] == tokenizer)].iloc[0]
    vocab = load_vocab(wh.vocab_path(corpus_name, tokenizer, row["data_key"]))
    ckpt = neural.checkpoint_path(h.models_dir / "neural" / key / "checkpoint")
    if not ckpt.exists():
        raise LmpipeError(
            f"the checkpoint of {corpus_name}/{choices[0][2]} is gone ({ckpt}); re-run the training"
        )
    net, _, _ = neural.load_model(ckpt, "best", vocab_fingerprint=vocab.fingerprint())
    learned = wh.learned_tokenizer_path(corpus_name, tokenizer, row["data_key"])
    toks = get_tokenizer(tokenizer, learned)(prefix)
    ids = vocab.ids(toks)
    unknown = list(dict.fromkeys(t for t, i in zip(toks, ids, strict=True) if i == UNK))
    new = neural.generate(
        net, ids, length, greedy=greedy, temperature=temperature, top_k=top_k, seed=seed
    )
    text = detokenize(tokenizer, toks + [vocab.token(i) for i in new], learned)
    return Generated(text, unknown)
