"""A small causal Transformer language model, after nanoGPT's ``model.py`` (Karpathy): token and
learned position embeddings, pre-norm blocks of causal self-attention and a GELU MLP, a final
LayerNorm and a decoder tied to the token embedding (Press & Wolf 2017).

It sees at most ``context`` inputs (its block size), so unlike the recurrent models it carries no
state across windows: it trains on independent random windows, is evaluated with sliding
windows (``lmpipe.lm.neural.evaluation``), and in generation its "state" is the last
``context - 1`` inputs, prepended to the next ones. Attention goes through
``F.scaled_dot_product_attention`` (the flash kernel on CUDA; on CPU its fused kernel, measured
not slower than the plain softmax(QK^T/sqrt(d))V in ``benchmarks/transformer_attention.py``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lmpipe.lm.neural.models import LanguageModel, State

INIT_STD = 0.02  # GPT-2's


class CausalSelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden size {dim} is not a multiple of heads={heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout = dropout
        self.resid_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape  # (batch, steps, dim)
        q, k, v = self.qkv(x).split(d, dim=2)
        # (batch, heads, steps, dim / heads)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True
        )
        y = y.transpose(1, 2).contiguous().view(b, t, d)  # (batch, steps, dim)
        return self.resid_drop(self.proj(y))


class Block(nn.Module):
    """x + attn(ln(x)), then x + mlp(ln(x)): pre-norm, as GPT-2 and nanoGPT."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads, dropout)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TransformerLM(LanguageModel):
    """``model(ids, state) -> (logits, state)``: ``state`` (optional) holds earlier inputs
    (batch, <= context - 1), prepended to ``ids``; logits are for ``ids`` only, and the new
    state is the last ``context - 1`` inputs. ``ids`` longer than ``context`` are refused."""

    def __init__(
        self,
        vocab_size: int,
        dim: int,
        layers: int,
        heads: int,
        context: int,
        dropout: float = 0.0,
        embed_dropout: float = 0.0,
    ) -> None:
        super().__init__(vocab_size)
        self.context = context
        self.embed = nn.Embedding(vocab_size, dim)
        self.pos = nn.Embedding(context, dim)
        self.drop = nn.Dropout(embed_dropout)
        self.blocks = nn.ModuleList(Block(dim, heads, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.decoder = nn.Linear(dim, vocab_size)
        self.decoder.weight = self.embed.weight  # tied
        self.apply(self._init)
        # GPT-2: the residual projections scaled by 1/sqrt(2 * layers)
        for name, p in self.named_parameters():
            if name.endswith(("attn.proj.weight", "mlp.2.weight")):
                nn.init.normal_(p, 0.0, INIT_STD / math.sqrt(2 * layers))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, INIT_STD)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, INIT_STD)

    def begin_state(self, batch_size: int, device: torch.device | str = "cpu") -> State:
        return (torch.empty(batch_size, 0, dtype=torch.int64, device=device),)

    def features(self, ids: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        new = ids.shape[1]
        if state is not None and state[0].numel():
            ids = torch.cat([state[0], ids], dim=1)[:, -self.context :]
        if ids.shape[1] > self.context:
            raise ValueError(f"{ids.shape[1]} inputs exceed the context of {self.context}")
        steps = ids.shape[1]
        positions = torch.arange(steps, device=ids.device)
        x = self.drop(self.embed(ids) + self.pos(positions))  # (batch, steps, dim)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x[:, -new:])  # (batch, new, dim)
        return x, (ids[:, -(self.context - 1) :] if self.context > 1 else ids[:, :0],)

    def output_layer(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decoder.weight, self.masked_bias(self.decoder.bias)
