from __future__ import annotations

import pytest
import torch

from lmpipe.lm.neural import TorchRNNLM, generate
from lmpipe.lm.vocab import BOS, EOS, PAD


@pytest.fixture
def model() -> TorchRNNLM:
    torch.manual_seed(0)
    return TorchRNNLM(15, "gru", 8, 8)


def test_sampling_is_reproducible_for_a_seed(model: TorchRNNLM) -> None:
    a = generate(model, [4, 5], 40, temperature=1.5, seed=3)
    assert a == generate(model, [4, 5], 40, temperature=1.5, seed=3)
    assert a != generate(model, [4, 5], 40, temperature=1.5, seed=4)
    assert len(a) == 40 and not {BOS, PAD} & set(a)


def test_greedy_and_top1_follow_the_argmax(model: TorchRNNLM) -> None:
    greedy = generate(model, [4], 10, greedy=True)
    assert greedy == generate(model, [4], 10, top_k=1, seed=9)
    ids = [EOS, 4]
    for tok in greedy:  # recompute the argmax chain from scratch
        logits, _ = model(torch.tensor([ids]))
        assert int(logits[0, -1].argmax()) == tok
        ids.append(tok)


def test_top_k_restricts_choices(model: TorchRNNLM) -> None:
    logits, _ = model(torch.tensor([[EOS]]))
    top3 = set(torch.topk(logits[0, -1], 3).indices.tolist())
    firsts = {generate(model, [], 1, top_k=3, temperature=5.0, seed=s)[0] for s in range(40)}
    assert firsts <= top3 and len(firsts) > 1


def test_rejects_bad_arguments(model: TorchRNNLM) -> None:
    with pytest.raises(ValueError, match="temperature"):
        generate(model, [4], 3, temperature=0)
    with pytest.raises(ValueError, match="out of range"):
        generate(model, [99], 3)
