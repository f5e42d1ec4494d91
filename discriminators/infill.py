"""Sequence-to-sequence models for in-filling (MaskGAN, Fedus et al. 2018): the shared
encoder-decoder, and the context-conditioned discriminator that scores each filled token.

Ids: tokens ``0..V-1``, ``PAD = V`` (also the decoder's start input), ``MASK = V + 1`` at a
blank of the context. A batch is ``context`` (N, L), the sequence with ``MASK`` at its blanks,
and ``filled`` (N, L), the same sequence with the blanks filled (by the data or a generator).

:class:`Seq2Seq` (after MaskGAN's ``seq2seq`` models; one layer, no attention, and the decoder
also reads the context token at each step, where theirs reads only y_t and attends over the
encoder's states):

    e_1..e_L, (h_E, c_E) = LSTM_enc(Emb(context))                  encoder over the masked sequence
    d_t = LSTM_dec([Emb(y_t); Emb(context_t)], d_{t-1}),  d_0 = (h_E, c_E)

one embedding shared by encoder and decoder (``seq2seq_share_embedding``). The decoder sees
the whole masked sequence through its initial state, and at step t whether position t is a
blank (and its token when it is not). The encoder reads each row up to its length only (a
packed sequence; the length is given, or the ids before the row's first ``PAD``): its final
state would otherwise also read the padding, and every score would change with the width the
batch is padded to. The generator reads ``y_t = filled_{t-1}`` (``PAD`` at t = 0) and
predicts ``filled_t``; the discriminator reads ``y_t = filled_t`` and judges it.

:class:`Seq2SeqDiscriminator`: ``logit_t = w · d_t + b`` = logit of P(filled_t is real | context,
filled_≤t). Causal in ``filled``: the open blanks after t do not change ``logit_t``. MaskGAN
trains it on the blanks only (real: the true tokens; fake: the generator's fills),
:meth:`Seq2SeqDiscriminator.loss`.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from discriminators.base import eval_mode, seeded

State = Tuple[torch.Tensor, torch.Tensor]


class Seq2Seq(nn.Module):
    """The encoder-decoder both in-filling models share (see the module docstring).

    Args:
        vocab_size: V (the embedding has V + 2 rows: the tokens, PAD and MASK).
        max_length: L.
        emb_dim, hidden_dim: embedding and LSTM sizes.
        seed: seeds the initialization (the global RNG is forked, not consumed).
    """

    def __init__(self, vocab_size: int, max_length: int, *, emb_dim: int = 32, hidden_dim: int = 32, seed: int = 0) -> None:
        super().__init__()
        if min(vocab_size, max_length, emb_dim, hidden_dim) < 1:
            raise ValueError(f"vocab_size, max_length, emb_dim and hidden_dim must be >= 1, got "
                             f"{vocab_size}, {max_length}, {emb_dim}, {hidden_dim}")
        self.vocab_size, self.max_length, self.emb_dim, self.hidden_dim = vocab_size, max_length, emb_dim, hidden_dim
        self.pad_id, self.mask_id = vocab_size, vocab_size + 1
        with seeded(seed):
            self.embedding = nn.Embedding(vocab_size + 2, emb_dim)
            self.encoder = nn.LSTM(emb_dim, hidden_dim, batch_first=True)
            self.decoder = nn.LSTM(2 * emb_dim, hidden_dim, batch_first=True)
            self.build_head()

    def build_head(self) -> None:
        """The output layer on the decoder states (subclasses)."""

    @property
    def device(self) -> torch.device:
        return self.embedding.weight.device

    def check(self, context: torch.Tensor, filled: torch.Tensor) -> None:
        if context.dim() != 2 or context.shape != filled.shape:
            raise ValueError(f"context and filled must be (N, L) tensors of one shape, got {tuple(context.shape)} "
                             f"and {tuple(filled.shape)}")
        for name, x in (("context", context), ("filled", filled)):
            if x.numel() and (int(x.min()) < 0 or int(x.max()) > self.mask_id):
                raise ValueError(f"{name} ids must lie in [0, {self.mask_id}] (tokens, PAD={self.pad_id}, "
                                 f"MASK={self.mask_id})")

    def encode(self, context: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> State:
        """context (N, L) -> the decoder's initial state (h, c), each (1, N, H): the encoder's
        state after the first ``lengths[i]`` ids of row i (``lengths`` (N,) in [0, L]; default:
        the ids before the row's first ``PAD``). A row of length 0 has nothing to score and reads
        its first id (a packed sequence cannot be empty)."""
        N, L = context.shape
        # on the CPU: pack_padded_sequence takes them there
        lengths = (context != self.pad_id).cumprod(1).sum(1).cpu() if lengths is None else torch.as_tensor(lengths).cpu()
        if tuple(lengths.shape) != (N,):
            raise ValueError(f"lengths must have shape ({N},) (one per row of context), got {tuple(lengths.shape)}")
        lo, hi = (int(lengths.min()), int(lengths.max())) if N else (0, 0)
        if lo < 0 or hi > L:
            raise ValueError(f"lengths must lie in [0, {L}] (the width of context), got values from {lo} to {hi}")
        x = self.embedding(context)
        if lo == L or not N:  # every row whole (the oracle's data): nothing to leave out, no packing
            return self.encoder(x)[1]
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.clamp(min=1), batch_first=True, enforce_sorted=False)
        return self.encoder(packed)[1]  # (h, c) in the rows' own order

    def decode(self, inputs: torch.Tensor, context: torch.Tensor, state: State) -> Tuple[torch.Tensor, State]:
        """Decoder inputs y (N, T) and context tokens (N, T) at the same positions, from ``state``
        -> (states (N, T, H), final state)."""
        x = torch.cat([self.embedding(inputs), self.embedding(context)], -1)
        return self.decoder(x, state)


class Seq2SeqDiscriminator(Seq2Seq):
    """Context-conditioned per-token discriminator (see the module docstring).

    ``forward(context, filled, lengths=None) -> (N, L)`` logits (differentiable, current mode);
    ``score_filled(context, filled, lengths=None)`` the same in eval mode without gradient
    (rewards). ``lengths`` (N,) as :meth:`Seq2Seq.encode` takes them; the logits at positions
    ``>= lengths[i]`` are meaningless, and nothing there changes those before.
    """

    is_probabilistic = True

    def build_head(self) -> None:
        self.head = nn.Linear(self.hidden_dim, 1)

    def forward(self, context: torch.Tensor, filled: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        context, filled = context.to(self.device).long(), filled.to(self.device).long()
        self.check(context, filled)
        states, _ = self.decode(filled, context, self.encode(context, lengths))
        return self.head(states).squeeze(-1)

    @torch.no_grad()
    def score_filled(self, context: torch.Tensor, filled: torch.Tensor,
                     lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(N, L) logits of P(real) per position, eval mode, no gradient (the mode is restored)."""
        with eval_mode(self):
            return self.forward(context, filled, lengths)

    def loss(self, context: torch.Tensor, real: torch.Tensor, fake: torch.Tensor, blanks: torch.Tensor) -> torch.Tensor:
        """MaskGAN's discriminator loss on the blanks: binary cross-entropy of the true tokens
        (label 1) and of the generator's fills (label 0), averaged over blanks of both batches."""
        pos = self(context, real)[blanks]
        neg = self(context, fake)[blanks]
        return 0.5 * (F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos))
                      + F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg)))
