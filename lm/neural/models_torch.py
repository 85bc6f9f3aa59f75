"""Library recurrent language models: embedding -> dropout -> ``nn.RNN``/``nn.GRU``/``nn.LSTM``
(any number of layers, dropout between them) -> dropout -> linear decoder, optionally tied to
the embedding (Press & Wolf 2017; Inan et al. 2017). Initialisation as PyTorch's
``word_language_model`` example: embedding and decoder U(-0.1, 0.1), decoder bias 0.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lmpipe.lm.neural.models import LanguageModel, State, rows

CELLS: dict[str, tuple[Any, dict[str, str]]] = {
    "rnn": (nn.RNN, {"nonlinearity": "tanh"}),
    "rnn-relu": (nn.RNN, {"nonlinearity": "relu"}),
    "gru": (nn.GRU, {}),
    "lstm": (nn.LSTM, {}),
}
INIT_RANGE = 0.1


class TorchRNNLM(LanguageModel):
    def __init__(
        self,
        vocab_size: int,
        arch: str,
        embed: int,
        hidden: int,
        layers: int = 1,
        dropout: float = 0.0,
        tied: bool = False,
    ) -> None:
        super().__init__(vocab_size)
        if arch not in CELLS:
            raise ValueError(f"arch must be one of {', '.join(CELLS)}; got {arch!r}")
        if tied and embed != hidden:
            raise ValueError(f"tied weights need embed == hidden; got {embed} and {hidden}")
        cell, kwargs = CELLS[arch]
        self.arch, self.hidden, self.layers = arch, hidden, layers
        self.embedding = nn.Embedding(vocab_size, embed)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.rnn = cell(
            embed,
            hidden,
            layers,
            dropout=dropout if layers > 1 else 0.0,
            batch_first=True,
            **kwargs,
        )
        self.decoder = nn.Linear(hidden, vocab_size)
        nn.init.uniform_(self.embedding.weight, -INIT_RANGE, INIT_RANGE)
        nn.init.zeros_(self.decoder.bias)
        if tied:
            self.decoder.weight = self.embedding.weight
        else:
            nn.init.uniform_(self.decoder.weight, -INIT_RANGE, INIT_RANGE)

    def begin_state(self, batch_size: int, device: torch.device | str = "cpu") -> State:
        z = torch.zeros(
            self.layers, batch_size, self.hidden, device=device, dtype=self.decoder.weight.dtype
        )
        return (z, z.clone()) if self.arch == "lstm" else (z,)

    def forward(self, ids: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        if state is None:
            state = self.begin_state(ids.shape[0], ids.device)
        x = self.drop(rows(self.embedding.weight, ids))  # (batch, steps, embed)
        # out: (batch, steps, hidden); new: like state
        out, new = self.rnn(x, state if self.arch == "lstm" else state[0])
        bias = self.masked_bias(self.decoder.bias)
        logits = F.linear(self.drop(out), self.decoder.weight, bias)  # (batch, steps, vocab)
        return logits, (tuple(new) if self.arch == "lstm" else (new,))
