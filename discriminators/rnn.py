"""A recurrent discriminator that scores a sequence and all its prefixes in one pass.

As in ScratchGAN (de Masson d'Autume et al. 2019) and MaskGAN (Fedus et al. 2018), a
unidirectional RNN reads the sequence and a linear head turns the state after each token
into the logit of P(real) of the prefix read so far:

    u_t     = Emb(x_t)  (+ P_t, or [Emb(x_t); P_t])   optional learned position embedding P
    h_t     = RNN(dropout(u_t), h_{t-1})              LSTM or GRU, h_0 = 0
    s_t     = LayerNorm(h_t)                          optional
    logit_t = w_o · dropout(s_t) + b_o                logit of P(real | x_{≤t})

Since the RNN is causal, ``logit_t`` is exactly the whole-sequence logit of the truncated
sequence ``x_{≤t}``. The sequence's logit is ``logit_{L-1}`` with ``L = lengths[i]``; its
features are ``s_{L-1}``.

Per-prefix API (mirrors ``forward`` / ``score``):

- ``forward_prefixes(tokens, lengths) -> (N, T)``: differentiable, current mode;
- ``score_prefixes(tokens, lengths) -> (N, T)``: for rewards, eval mode, no gradient, mode
  restored.

Column ``t`` is the logit of the prefix ``tokens[:, :t+1]``. Columns ``t >= lengths[i]`` (past
the end) repeat the last valid one, the logit of the whole sequence, so
``score_prefixes(x, L)[:, -1] == score(x, L)``.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from discriminators.base import BaseDiscriminator

POSITION_FEATURES = (None, "add", "concat")


class RNNDiscriminator(BaseDiscriminator):
    """Recurrent (LSTM/GRU) discriminator with per-prefix logits.

    Args:
        vocab_size: ``V``; the embedding has ``V + 1`` rows, the last (pad id ``V``) zero.
        max_length: longest ``T`` accepted (also the size of the position embedding).
        cell: ``"lstm"`` or ``"gru"``.
        emb_dim: token embedding size.
        hidden: RNN state size (the feature size ``F``).
        num_layers: stacked RNN layers (dropout applies between them too).
        layer_norm: LayerNorm on each state before the head.
        dropout: dropout on the inputs and on the states before the head (training mode only).
        position_features: None, ``"add"`` (a learned position embedding added to the token
            embedding) or ``"concat"`` (one of size ``pos_dim`` concatenated to it).
        pos_dim: size of the concatenated position embedding.

    ``forward(tokens (N, T), lengths (N,) | None) -> (N,)``, ``forward_prefixes``/``score_prefixes
    -> (N, T)``, ``features -> (N, hidden)``.
    """

    supports_prefixes = True

    def __init__(
        self,
        vocab_size: int,
        max_length: int = 20,
        *,
        cell: str = "lstm",
        emb_dim: int = 64,
        hidden: int = 128,
        num_layers: int = 1,
        layer_norm: bool = True,
        dropout: float = 0.1,
        position_features: Optional[str] = None,
        pos_dim: int = 16,
    ) -> None:
        super().__init__(vocab_size, max_length)
        cells = {"lstm": nn.LSTM, "gru": nn.GRU}
        if cell not in cells:
            raise ValueError(f"unknown cell {cell!r}; valid cells: {sorted(cells)}")
        if position_features not in POSITION_FEATURES:
            raise ValueError(f"unknown position_features {position_features!r}; valid: {list(POSITION_FEATURES)}")
        for name, value in (("emb_dim", emb_dim), ("hidden", hidden), ("num_layers", num_layers), ("pos_dim", pos_dim)):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.cell, self.emb_dim, self.hidden, self.num_layers = cell, emb_dim, hidden, num_layers
        self.position_features, self.dropout_p = position_features, dropout
        self.feature_dim = hidden

        self.embedding = nn.Embedding(vocab_size + 1, emb_dim, padding_idx=vocab_size)
        in_dim = emb_dim
        self.position: Optional[nn.Embedding] = None
        if position_features == "add":
            self.position = nn.Embedding(max_length, emb_dim)
        elif position_features == "concat":
            self.position = nn.Embedding(max_length, pos_dim)
            in_dim += pos_dim
        if self.position is not None:
            nn.init.normal_(self.position.weight, std=0.1)
        self.rnn = cells[cell](in_dim, hidden, num_layers=num_layers, batch_first=True,
                               dropout=dropout if num_layers > 1 else 0.0)
        self.norm = nn.LayerNorm(hidden) if layer_norm else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, 1)

    def states(self, tokens: torch.Tensor) -> torch.Tensor:
        """Checked ``(N, T)`` tokens -> ``(N, T, hidden)`` (normalized) states ``s_t``."""
        u = self.embedding(tokens)  # (N, T, E)
        if self.position is not None:
            p = self.position(torch.arange(tokens.shape[1], device=tokens.device))[None].expand(tokens.shape[0], -1, -1)
            u = u + p if self.position_features == "add" else torch.cat([u, p], dim=-1)
        h, _ = self.rnn(self.dropout(u))
        return self.norm(h)

    def encode(self, tokens: torch.Tensor, lengths: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``(N, T)`` checked tokens -> ``(N, hidden)``: the state after the last valid token."""
        s = self.states(tokens)
        idx = (lengths - 1).view(-1, 1, 1).expand(-1, 1, s.shape[2])
        return s.gather(1, idx).squeeze(1)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(features)).squeeze(-1)

    def forward_prefixes(self, tokens: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Logits of every prefix, differentiable, in the module's current mode.

        Args:
            tokens: ``(N, T)`` int64 ids in ``[0, V]``.
            lengths: ``(N,)`` int64 in ``[1, T]`` or None.

        Returns:
            ``(N, T)`` float: ``[:, t]`` is the logit of ``tokens[:, :t+1]``; columns
            ``t >= lengths[i]`` repeat column ``lengths[i] - 1``.
        """
        tokens, lengths, valid = self.check_inputs(tokens, lengths)
        logits = self.head(self.states(tokens))  # (N, T)
        T = tokens.shape[1]
        idx = torch.minimum(torch.arange(T, device=tokens.device)[None, :], (lengths - 1)[:, None])
        return self.check_output(logits.gather(1, idx))

    def score_prefixes(self, tokens: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """:meth:`forward_prefixes` for rewards: eval mode, no gradient, mode restored. ``(N, T)``."""
        with self.scoring():
            return self.forward_prefixes(tokens, lengths)

    def extra_repr(self) -> str:
        return (
            f"vocab_size={self.vocab_size}, max_length={self.max_length}, cell={self.cell!r}, "
            f"position_features={self.position_features!r}, dropout={self.dropout_p}"
        )
