"""Library recurrent language models: embedding -> locked dropout -> ``nn.RNN``/``nn.GRU``/
``nn.LSTM`` layers with locked dropout between them -> locked dropout -> linear decoder,
optionally tied to the embedding (Press & Wolf 2017; Inan et al. 2017).

Locked (variational) dropout (Gal & Ghahramani 2016; Merity et al. 2018, AWD-LSTM) draws one
mask per sequence and feature and applies it at every time step, which regularizes recurrent
models on small corpora far better than a fresh mask per step. Initialisation as PyTorch's
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


class LockedDropout(nn.Module):
    """Dropout with one mask per sequence and feature, shared by every time step:
    x (steps, batch, features) * mask (1, batch, features) / (1 - p)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        mask = x.new_empty(1, x.shape[1], x.shape[2]).bernoulli_(1 - self.p).div_(1 - self.p)
        return x * mask


class TorchRNNLM(LanguageModel):
    """``embed_dropout`` on the embedded inputs, ``dropout`` between layers and before the
    output layer, both locked over time."""

    def __init__(
        self,
        vocab_size: int,
        arch: str,
        embed: int,
        hidden: int,
        layers: int = 1,
        dropout: float = 0.0,
        tied: bool = False,
        embed_dropout: float = 0.0,
        weight_drop: float = 0.0,
    ) -> None:
        super().__init__(vocab_size)
        if arch not in CELLS:
            raise ValueError(f"arch must be one of {', '.join(CELLS)}; got {arch!r}")
        if tied and embed != hidden:
            raise ValueError(f"tied weights need embed == hidden; got {embed} and {hidden}")
        cell, kwargs = CELLS[arch]
        self.arch, self.hidden, self.layers = arch, hidden, layers
        self.weight_drop = weight_drop
        self.embedding = nn.Embedding(vocab_size, embed)
        self.drop_in = LockedDropout(embed_dropout)
        self.drop = LockedDropout(dropout)
        # one module per layer, so that the dropout between layers can be locked over time;
        # step-major as torch's kernels are: batch-major input and output would be copied
        self.rnn = nn.ModuleList(
            cell(embed if i == 0 else hidden, hidden, 1, **kwargs) for i in range(layers)
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

    def _recur(self, layer: nn.Module, x: torch.Tensor, s: Any) -> tuple[torch.Tensor, Any]:
        """One layer over x (steps, batch, in) -> (steps, batch, hidden); in training with
        ``weight_drop``, through hidden-to-hidden weights with a dropout mask drawn once per
        forward pass, i.e. per minibatch and shared by every time step (DropConnect, Wan et al.
        2013, on the recurrent weights as AWD-LSTM does, Merity et al. 2018). RNNBase keeps its
        flat weight list in step with assignments, so ``functional_call`` runs the usual kernel."""
        if not self.training or self.weight_drop == 0:
            return layer(x, s)
        weight_hh: torch.Tensor = layer.weight_hh_l0  # type: ignore[assignment]  # RNNBase's
        dropped = {"weight_hh_l0": F.dropout(weight_hh, self.weight_drop)}
        return torch.func.functional_call(layer, dropped, (x, s))

    def features(self, ids: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        if state is None:
            state = self.begin_state(ids.shape[0], ids.device)
        x = self.drop_in(rows(self.embedding.weight, ids.t()))  # (steps, batch, embed)
        new: list[tuple[torch.Tensor, ...]] = []
        for i, layer in enumerate(self.rnn):
            if i:
                x = self.drop(x)
            # the layer's state: (1, batch, hidden) slices of each (layers, batch, hidden)
            s = tuple(t[i : i + 1] for t in state)
            x, out = self._recur(layer, x, s if self.arch == "lstm" else s[0])
            new.append(tuple(out) if self.arch == "lstm" else (out,))
        # (batch, steps, hidden) as a view of the step-major states (read step-major by the
        # training loss, see lmpipe.lm.neural.training), and the state (layers, batch, hidden)
        states = tuple(torch.cat(parts) for parts in zip(*new, strict=True))
        return self.drop(x).transpose(0, 1), states

    def output_layer(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decoder.weight, self.masked_bias(self.decoder.bias)
