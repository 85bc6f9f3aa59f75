"""Speed and quality of lm.neural against its two peers, run in one process on one machine.

1. ``ptb``: training tokens/s of PyTorch's ``word_language_model`` example (model and training
   loop copied faithfully below; PTB, LSTM 2 x 200, bptt 35, batch 20, lr 20, clip 0.25, no
   dropout; docs/reference-figures.md: ~6,100-6,300 tok/s on 2 cores) vs lm.neural's ``lstm``
   on the same
   configuration, plus lm.neural's exact evaluation speed (batch 1) on PTB valid.
2. ``d2l``: training tokens/s of d2l 1.0.3's ``RNNScratch`` loop (one-hot inputs, per-step output
   layer, its clip and SGD; copied below; 32 hidden, batch 1024, 32 steps) vs lm.neural's
   ``rnn-scratch`` (and the other scratch models) on The Time Machine characters.
3. ``quality``: a 1-layer GRU of 256 units for 3 minutes on The Time Machine characters (the
   split of docs/design.md); the target is validation perplexity < 4.27 (KenLM 5-gram), aim < 3.9.

    python benchmarks/neural_bench.py [--parts ptb,d2l,quality,amp] [--seconds 20] [--quick]

``amp``: one PTB epoch of the ``ptb`` recipe in fp32 and with ``--amp`` (on a CPU: the output
layer's products in bf16), two seeds each (the noise), their validation perplexities side by
side (about 7 minutes).

Prints a table and writes JSON to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lmpipe.lm.metrics import summarize
from lmpipe.lm.neural import TrainConfig, evaluate, train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from neural_data import REPO, ptb_words, timemachine_chars  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"


# ---- 1. pytorch/examples word_language_model (model.py + main.py train loop), verbatim logic ----


class WLMRNNModel(nn.Module):
    def __init__(
        self, rnn_type: str, ntoken: int, ninp: int, nhid: int, nlayers: int, dropout: float = 0.5
    ) -> None:
        super().__init__()
        self.ntoken = ntoken
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = getattr(nn, rnn_type)(ninp, nhid, nlayers, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        self.rnn_type, self.nhid, self.nlayers = rnn_type, nhid, nlayers
        initrange = 0.1
        nn.init.uniform_(self.encoder.weight, -initrange, initrange)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -initrange, initrange)

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        decoded = self.decoder(output).view(-1, self.ntoken)
        return F.log_softmax(decoded, dim=1), hidden

    def init_hidden(self, bsz: int):
        weight = next(self.parameters())
        return (
            weight.new_zeros(self.nlayers, bsz, self.nhid),
            weight.new_zeros(self.nlayers, bsz, self.nhid),
        )


def wlm_train_speed(train_ids: np.ndarray, ntokens: int, seconds: float) -> dict:
    """The example's ``train()`` (bptt 35, batch 20, lr 20, clip 0.25) for ``seconds``."""
    torch.manual_seed(1111)
    data = torch.from_numpy(train_ids.astype(np.int64))
    bsz, bptt, lr, clip = 20, 35, 20.0, 0.25
    nbatch = data.size(0) // bsz
    train_data = data.narrow(0, 0, nbatch * bsz).view(bsz, -1).t().contiguous()  # batchify
    model = WLMRNNModel("LSTM", ntokens, 200, 200, 2, dropout=0.0)
    criterion = nn.NLLLoss()
    model.train()
    hidden = model.init_hidden(bsz)
    tokens, total_loss, start = 0, 0.0, time.perf_counter()
    for batch, i in enumerate(range(0, train_data.size(0) - 1, bptt)):  # noqa: B007
        seq_len = min(bptt, len(train_data) - 1 - i)  # get_batch
        x, targets = train_data[i : i + seq_len], train_data[i + 1 : i + 1 + seq_len].view(-1)
        model.zero_grad()
        hidden = tuple(h.detach() for h in hidden)  # repackage_hidden
        output, hidden = model(x, hidden)
        loss = criterion(output, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        for p in model.parameters():
            p.data.add_(p.grad, alpha=-lr)
        total_loss += loss.item()
        tokens += targets.numel()
        if time.perf_counter() - start >= seconds:
            break
    elapsed = time.perf_counter() - start
    return {
        "tokens_per_second": tokens / elapsed,
        "tokens": tokens,
        "seconds": elapsed,
        "train_perplexity": math.exp(total_loss / (batch + 1)),
    }


# ---- 2. d2l 1.0.3 RNNScratch + RNNLMScratch + Trainer.fit_epoch, verbatim logic ----


class D2LRNNScratch(nn.Module):
    def __init__(self, num_inputs: int, num_hiddens: int, sigma: float = 0.01) -> None:
        super().__init__()
        self.num_hiddens = num_hiddens
        self.W_xh = nn.Parameter(torch.randn(num_inputs, num_hiddens) * sigma)
        self.W_hh = nn.Parameter(torch.randn(num_hiddens, num_hiddens) * sigma)
        self.b_h = nn.Parameter(torch.zeros(num_hiddens))

    def forward(self, inputs, state=None):
        if state is None:
            state = torch.zeros((inputs.shape[1], self.num_hiddens), device=inputs.device)
        else:
            (state,) = state
        outputs = []
        for X in inputs:  # (num_steps, batch_size, num_inputs)
            state = torch.tanh(
                torch.matmul(X, self.W_xh) + torch.matmul(state, self.W_hh) + self.b_h
            )
            outputs.append(state)
        return outputs, state


class D2LRNNLMScratch(nn.Module):
    def __init__(self, rnn: D2LRNNScratch, vocab_size: int, sigma: float = 0.01) -> None:
        super().__init__()
        self.rnn, self.vocab_size = rnn, vocab_size
        self.W_hq = nn.Parameter(torch.randn(rnn.num_hiddens, vocab_size) * sigma)
        self.b_q = nn.Parameter(torch.zeros(vocab_size))

    def one_hot(self, X):
        return F.one_hot(X.T, self.vocab_size).type(torch.float32)  # (num_steps, batch, vocab)

    def output_layer(self, rnn_outputs):
        return torch.stack([torch.matmul(H, self.W_hq) + self.b_q for H in rnn_outputs], 1)

    def forward(self, X, state=None):
        rnn_outputs, _ = self.rnn(self.one_hot(X), state)
        return self.output_layer(rnn_outputs)

    def loss(self, Y_hat, Y):  # d2l.Classifier.loss
        return F.cross_entropy(Y_hat.reshape((-1, Y_hat.shape[-1])), Y.reshape((-1,)))


def d2l_train_speed(train_ids: np.ndarray, vocab_size: int, epochs: int) -> dict:
    """d2l.TimeMachine(batch_size=1024, num_steps=32) data (every offset window, the first
    10,000, shuffled DataLoader) and Trainer(gradient_clip_val=1) with SGD lr 1."""
    torch.manual_seed(0)
    num_steps, batch_size, num_train = 32, 1024, 10000
    corpus = torch.from_numpy(train_ids.astype(np.int64))
    array = torch.stack([corpus[i : i + num_steps + 1] for i in range(len(corpus) - num_steps)])
    X, Y = array[:num_train, :-1], array[:num_train, 1:]
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(X, Y), batch_size, shuffle=True
    )
    model = D2LRNNLMScratch(D2LRNNScratch(vocab_size, 32), vocab_size)
    optim = torch.optim.SGD(model.parameters(), lr=1.0)
    tokens, start = 0, time.perf_counter()
    for _ in range(epochs):
        for x, y in loader:
            loss = model.loss(model(x), y)
            _ = torch.exp(loss)  # training_step's plotted ppl (the plotting itself left out)
            optim.zero_grad()
            with torch.no_grad():
                loss.backward()
                params = [p for p in model.parameters() if p.requires_grad]  # clip_gradients
                norm = torch.sqrt(sum(torch.sum(p.grad**2) for p in params))
                if norm > 1:
                    for param in params:
                        param.grad[:] *= 1 / norm
                optim.step()
            tokens += y.numel()
    elapsed = time.perf_counter() - start
    return {"tokens_per_second": tokens / elapsed, "tokens": tokens, "seconds": elapsed}


# ---- lm.neural runs ----


def ours(config: TrainConfig, streams, note: str) -> dict:
    model, r = train(
        config,
        streams.train,
        streams.valid,
        len(streams.vocab),
        vocab_fingerprint=streams.vocab.fingerprint(),
    )
    valid_seconds = sum(h["valid_seconds"] for h in r.history)
    return {
        "note": note,
        "tokens_per_second": r.tokens_per_second,
        "epochs": r.epochs_run,
        "valid_perplexity": r.best_valid_perplexity,
        "best_epoch": r.best_epoch,
        "wall_seconds": r.wall_seconds,
        "eval_tokens_per_second": len(streams.valid) * r.epochs_run / valid_seconds,
        "parameters": r.parameters,
        "model": model,
        "config": config.as_dict(),
        "history": r.history,
    }


def part_ptb(seconds: float) -> dict:
    s = ptb_words()
    peer = wlm_train_speed(s.train, len(s.vocab), seconds)
    cfg = TrainConfig(
        arch="lstm",
        embed=200,
        hidden=200,
        layers=2,
        dropout=0.0,
        tied=False,  # the example's model: its decoder is its own matrix
        epochs=None,
        max_minutes=seconds / 60,
        seq_len=35,
        batch_size=20,
        optimizer="sgd",
        lr=20.0,
        clip=0.25,
        seed=1111,
        device="cpu",
    )
    mine = ours(cfg, s, "lm.neural lstm 2x200, same recipe")
    mine.pop("model")
    # training set glibc's allocator up (lm.process_memory.keep_freed_memory) for the rest of
    # this process: the example again, with that setting, separates it from the fused loss
    peer_tuned = wlm_train_speed(s.train, len(s.vocab), seconds)
    amp = cfg.model_copy(update={"amp": True})
    bf16 = ours(amp, s, "the same with --amp (the output layer's products in bf16)")
    bf16.pop("model")
    epoch_seconds = len(s.train) / mine["tokens_per_second"]
    return {
        "word_language_model": peer,
        "word_language_model_allocator_tuned": peer_tuned,
        "lm_neural": mine,
        "lm_neural_amp": bf16,
        "speedup": mine["tokens_per_second"] / peer["tokens_per_second"],
        "speedup_over_tuned_peer": mine["tokens_per_second"] / peer_tuned["tokens_per_second"],
        "speedup_amp": bf16["tokens_per_second"] / peer["tokens_per_second"],
        "ptb_train_tokens": len(s.train),
        "lm_neural_seconds_per_epoch": epoch_seconds,
    }


def part_amp_quality(epochs: int) -> dict:
    """Validation perplexity after the same updates (``epochs`` of PTB, the recipe of part
    ``ptb``) in fp32 and with --amp, each with two seeds (the noise): bf16 must stay within
    it."""
    s = ptb_words()
    base = TrainConfig(
        arch="lstm", embed=200, hidden=200, layers=2, dropout=0.0, tied=False, epochs=epochs,
        seq_len=35, batch_size=20, optimizer="sgd", lr=20.0, clip=0.25, seed=1111,
        device="cpu", patience=0,
    )  # fmt: skip
    runs = {
        "fp32_seed1111": base,
        "fp32_seed1112": base.model_copy(update={"seed": 1112}),
        "amp_seed1111": base.model_copy(update={"amp": True}),
        "amp_seed1112": base.model_copy(update={"amp": True, "seed": 1112}),
    }
    out = {}
    for name, cfg in runs.items():
        r = ours(cfg, s, name)
        out[name] = {k: r[k] for k in ("valid_perplexity", "tokens_per_second", "wall_seconds")}
    return out


def part_d2l(epochs: int) -> dict:
    s = timemachine_chars()
    peer = d2l_train_speed(s.train, len(s.vocab), epochs)
    out: dict = {"d2l_RNNScratch": peer}
    batches_per_epoch = (len(s.train) - 1) // 32 // 1024
    for arch in ("rnn-scratch", "gru-scratch", "lstm-scratch", "rnn", "gru", "lstm"):
        cfg = TrainConfig(
            arch=arch,
            embed=32,
            hidden=32,
            epochs=max(1, epochs * 10 // batches_per_epoch),
            seq_len=32,
            batch_size=1024,
            sampling="random",
            optimizer="sgd",
            lr=1.0,
            clip=1.0,
            device="cpu",
        )
        r = ours(cfg, s, f"lm.neural {arch}")
        r.pop("model")
        out[arch] = r
    out["speedup_rnn_scratch"] = out["rnn-scratch"]["tokens_per_second"] / peer["tokens_per_second"]
    return out


# chosen on validation perplexity among 5 variants (batch 32/64/128, seq_len 64/128, dropout
# 0.2/0.3, Adam/AdamW) run side by side on 2-core slices: all reached 4.11-4.15 in 3 minutes
QUALITY = dict(
    arch="gru",
    embed=128,
    hidden=256,
    layers=1,
    dropout=0.3,
    epochs=None,
    seq_len=64,
    batch_size=64,
    optimizer="adam",
    lr=4e-3,
    clip=1.0,
    lr_decay=0.5,
    seed=0,
    device="cpu",
)


def part_quality(minutes: float, overrides: dict) -> dict:
    s = timemachine_chars()
    cfg = TrainConfig(**(QUALITY | {"max_minutes": minutes} | overrides))
    r = ours(cfg, s, "GRU 256, Time Machine chars")
    model = r.pop("model")
    r["test"] = summarize(evaluate(model, s.test), s.test_bytes).as_dict()
    r["valid"] = summarize(evaluate(model, s.valid), s.valid_bytes).as_dict()
    r["target_valid_perplexity"] = 4.27
    return r


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--parts", default="ptb,d2l,quality")
    ap.add_argument(
        "--seconds", type=float, default=25.0, help="training time of each PTB speed run"
    )
    ap.add_argument("--quick", action="store_true", help="smoke run: a few seconds per part")
    ap.add_argument("--quality-config", default="{}", help="JSON overrides of the quality run")
    args = ap.parse_args()
    parts = args.parts.split(",")
    results: dict = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "quick": args.quick,
    }
    if "ptb" in parts:
        results["ptb"] = p = part_ptb(2.0 if args.quick else args.seconds)
        print(
            "PTB LSTM 2x200 training: word_language_model "
            f"{p['word_language_model']['tokens_per_second']:,.0f} tok/s, lm.neural "
            f"{p['lm_neural']['tokens_per_second']:,.0f} tok/s (x{p['speedup']:.2f}); "
            f"one epoch ~{p['lm_neural_seconds_per_epoch']:.0f} s; exact evaluation "
            f"{p['lm_neural']['eval_tokens_per_second']:,.0f} tok/s; with --amp "
            f"{p['lm_neural_amp']['tokens_per_second']:,.0f} tok/s (x{p['speedup_amp']:.2f}); "
            "word_language_model with lm.neural's allocator settings "
            f"{p['word_language_model_allocator_tuned']['tokens_per_second']:,.0f} tok/s "
            f"(lm.neural x{p['speedup_over_tuned_peer']:.2f})"
        )
    if "amp" in parts:
        results["amp"] = a = part_amp_quality(1)
        for name, r in a.items():
            print(
                f"PTB LSTM 2x200, 1 epoch, {name}: valid perplexity "
                f"{r['valid_perplexity']:.3f}, {r['tokens_per_second']:,.0f} tok/s"
            )
    if "d2l" in parts:
        results["d2l"] = d = part_d2l(1 if args.quick else 10)
        d2l_speed = d["d2l_RNNScratch"]["tokens_per_second"]
        print(f"Time Machine RNN 32, batch 1024 x 32: d2l {d2l_speed:,.0f} tok/s")
        for arch in ("rnn-scratch", "gru-scratch", "lstm-scratch", "rnn", "gru", "lstm"):
            print(f"  lm.neural {arch:13s} {d[arch]['tokens_per_second']:>12,.0f} tok/s")
        print(f"  rnn-scratch speedup over d2l: x{d['speedup_rnn_scratch']:.2f} (target >= 2)")
    if "quality" in parts:
        results["quality"] = q = part_quality(
            0.1 if args.quick else 3.0, json.loads(args.quality_config)
        )
        print(
            f"GRU 256, 3 min: valid perplexity {q['valid']['perplexity']:.3f} (target < 4.27), "
            f"test {q['test']['perplexity']:.3f}, {q['epochs']} epochs (best {q['best_epoch']}), "
            f"{q['tokens_per_second']:,.0f} tok/s, bits/byte valid "
            f"{q['valid']['bits_per_byte']:.3f}"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"neural_bench-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
