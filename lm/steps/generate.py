"""``lmpipe generate``: continue a prefix with a model that a stored run trained."""

from __future__ import annotations

import pyarrow.parquet as pq

from lmpipe.lm.errors import LmpipeError, WarehouseError
from lmpipe.lm.ingest import load_vocab
from lmpipe.lm.steps.home import Home
from lmpipe.lm.tokenize import detokenize, get_tokenizer


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
) -> str:
    from lmpipe.lm import neural

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
    toks = get_tokenizer(tokenizer)(prefix)
    new = neural.generate(
        net, vocab.ids(toks), length, greedy=greedy, temperature=temperature, top_k=top_k, seed=seed
    )
    return detokenize(tokenizer, toks + [vocab.token(i) for i in new])
