"""The Transformer (lm.neural.models_transformer): causal, exact sliding-window evaluation,
attention equal to its plain formula, generation, and its settings through the registry."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lmpipe.lm.neural import TrainConfig, build_model, evaluate, generate
from lmpipe.lm.neural.models_transformer import CausalSelfAttention, TransformerLM

VOCAB = 12


def model(context: int = 8, seed: int = 0) -> TransformerLM:
    torch.manual_seed(seed)
    m = TransformerLM(VOCAB, dim=16, layers=2, heads=4, context=context, dropout=0.0)
    return m.eval()


def stream(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(4, VOCAB, n).astype(np.int32)


def brute_force(m: TransformerLM, s: np.ndarray) -> np.ndarray:
    """Each token from exactly its last ``context`` inputs, one forward pass per token."""
    inputs = np.concatenate(([2], s[:-1])).astype(np.int64)  # </s> first, as <s>
    out = []
    with torch.no_grad():
        for t in range(len(s)):
            x = torch.from_numpy(inputs[max(0, t - m.context + 1) : t + 1])[None]
            logits, _ = m(x)
            out.append(torch.log_softmax(logits[0, -1].double(), -1)[int(s[t])].item())
    return np.array(out)


def test_stride_one_predicts_each_token_from_its_full_context():
    m, s = model(), stream(40)
    assert np.allclose(evaluate(m, s, stride=1).logprob, brute_force(m, s), atol=1e-6)


def test_a_token_never_depends_on_a_later_one():
    m, s = model(), stream(40)
    changed = s.copy()
    changed[25:] = (changed[25:] + 3 - 4) % (VOCAB - 4) + 4  # every token from 25 on differs
    for stride in (1, 3, 8):
        a, b = evaluate(m, s, stride=stride).logprob, evaluate(m, changed, stride=stride).logprob
        assert np.array_equal(a[:25], b[:25]), stride
        assert not np.array_equal(a[25:], b[25:])


def test_the_stride_changes_nothing_while_the_history_fits_the_context():
    m = model(context=16)
    s = stream(16)  # every token's whole history fits: one window holds it
    base = evaluate(m, s, stride=1).logprob
    for stride in (2, 5, 16):
        assert np.array_equal(evaluate(m, s, stride=stride).logprob, base)
    # longer streams: a larger stride gives some tokens less history, never a missing score
    long = stream(50)
    for stride in (1, 4, 8):
        lp = evaluate(m, long, stride=stride).logprob
        assert lp.shape == (50,) and np.isfinite(lp).all()
    # and the first tokens of a long stream score as the short stream alone
    assert np.array_equal(evaluate(m, long, stride=4).logprob[:16], evaluate(m, long[:16]).logprob)


def test_attention_equals_the_plain_formula():
    torch.manual_seed(0)
    attn = CausalSelfAttention(16, 4, 0.0).eval()
    x = torch.randn(2, 7, 16)
    b, t, d = x.shape
    q, k, v = attn.qkv(x).split(d, dim=2)
    q, k, v = (z.view(b, t, 4, d // 4).transpose(1, 2) for z in (q, k, v))
    scores = q @ k.transpose(-2, -1) / math.sqrt(d // 4)  # (batch, heads, t, t)
    scores = scores.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
    y = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
    assert torch.allclose(attn(x), attn.proj(y), atol=1e-5)


def test_generation_sees_the_last_context_inputs_and_is_reproducible():
    m = model(context=4)
    a = generate(m, [4, 5, 6], 12, seed=3)
    assert len(a) == 12 and a == generate(m, [4, 5, 6], 12, seed=3)
    assert all(i not in (1, 3) for i in a)  # never <s> or <pad>
    assert generate(m, [4, 5, 6], 5, greedy=True) == generate(m, [4, 5, 6], 5, greedy=True)
    with pytest.raises(ValueError, match="exceed the context"):
        m(torch.zeros(1, 5, dtype=torch.int64))


def test_its_settings_go_through_the_registry():
    cfg = TrainConfig.for_arch("transformer", {"hidden": 32, "heads": 4, "layers": 1})
    assert cfg.sampling == "random" and cfg.tied and cfg.window == cfg.context == 64
    assert cfg.eval_stride == 32
    m = build_model(cfg, VOCAB)
    assert isinstance(m, TransformerLM) and m.decoder.weight is m.embed.weight
    with pytest.raises(ValueError, match="multiple of heads"):
        TrainConfig.for_arch("transformer", {"hidden": 30, "heads": 4})
    with pytest.raises(ValueError, match="sampling = random"):
        TrainConfig.for_arch("transformer", {"sampling": "sequential"})


def test_a_training_killed_with_sigkill_resumes_to_the_same_end(tmp_path, corpora_dir):
    """``lmpipe train --arch transformer`` killed after its first checkpoint and resumed ends
    with exactly the figures of an uninterrupted run (CPU)."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    text = tmp_path / "tm.txt"
    lines = (corpora_dir / "timemachine.txt").read_text(encoding="utf-8").splitlines()[:300]
    text.write_text("\n".join(lines) + "\n", encoding="utf-8")
    argv = [sys.executable, "-m", "lmpipe.flows.cli", "train", "--text", str(text),
            "--tokenizer", "char", "--arch", "transformer", "--hidden", "16", "--heads", "2",
            "--layers", "1", "--context", "16", "--batch-size", "16", "--epochs", "3",
            "--device", "cpu", "--json"]  # fmt: skip

    def finish(home: Path, *extra: str) -> dict:
        r = subprocess.run([*argv, *extra, "--home", str(home)], capture_output=True, text=True,
                           timeout=300)  # fmt: skip
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    reference = finish(tmp_path / "a")
    home = tmp_path / "b"
    proc = subprocess.Popen([*argv, "--home", str(home)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if list(home.glob("data/models/neural/*/checkpoint/*.pt")):
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    resumed = finish(home, "--resume")
    for k in ("valid_perplexity", "test_perplexity", "epochs", "best_epoch"):
        assert resumed[k] == reference[k], k
