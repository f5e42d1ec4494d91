"""The one discriminator trainer: binary cross-entropy on real vs generated sequences.

Each call of :meth:`DiscriminatorTrainer.step` builds a labelled set from the given real
sequences (target ``1 - label_smoothing``) and fake sequences (target 0), shuffles it with the
trainer's seeded ``torch.Generator`` and makes ``k`` passes (epochs) over it in minibatches of
``batch_size`` mixed sequences, one Adam update per minibatch:

    L(θ) = -1/B Σ_i [ y_i log σ(D_θ(x_i)) + (1 - y_i) log(1 - σ(D_θ(x_i))) ]
    θ ← Adam(θ, ∇L)

This is SeqGAN's schedule: each round trains ``k = 3`` epochs over 10,000 real and 10,000
fresh generated sequences with batch 64. When the set fits in one minibatch (``N_real +
N_fake <= batch_size``), ``k`` passes are ``k`` minibatch updates on the same batch.

Replay (``replay_size > 0``): a buffer of up to ``replay_size`` past fake sequences. Once it
holds any, a fraction ``replay_fraction`` of this call's fake side is replaced by sequences
drawn from it (so the two classes stay balanced); after the call all of this call's fakes enter
the buffer (random replacement when full, the image history of Shrivastava et al. 2017).

Statistics (on the minibatches used, measured by the training-mode forward pass that precedes
each update): ``loss`` (mean BCE), ``acc_real`` / ``acc_fake`` (fraction with logit > 0 /
< 0), ``steps`` (updates in this call), ``total_steps``, ``n_real``, ``n_fake``, ``n_replayed``.
A non-finite loss or logit raises :class:`~discriminators.base.DivergenceError` naming the
update number, before that update is applied.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from discriminators.base import DivergenceError


class DiscriminatorTrainer:
    """Trains any discriminator of this package (a module mapping ``(N, T), (N,) -> (N,)`` logits).

    Args:
        discriminator: the model; moved to ``device`` if one is given.
        lr: Adam learning rate (SeqGAN: 1e-4).
        weight_decay: Adam's L2 weight decay.
        betas: Adam's betas.
        label_smoothing: real targets are ``1 - label_smoothing`` (one-sided smoothing).
        replay_size: capacity of the buffer of past fake sequences (0: no replay).
        replay_fraction: fraction of the fake side drawn from the buffer when it is non-empty.
        batch_size: sequences (real and fake mixed) per minibatch.
        max_grad_norm: clip the gradient norm to this value (None: no clipping).
        device: where to train; default: the discriminator's device.
        generator: a CPU ``torch.Generator`` for shuffling and replay draws.
        seed: seeds a fresh generator when ``generator`` is None (default 0).
    """

    def __init__(
        self,
        discriminator: nn.Module,
        *,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        betas: Tuple[float, float] = (0.9, 0.999),
        label_smoothing: float = 0.0,
        replay_size: int = 0,
        replay_fraction: float = 0.5,
        batch_size: int = 64,
        max_grad_norm: Optional[float] = None,
        device: Union[str, torch.device, None] = None,
        generator: Optional[torch.Generator] = None,
        seed: Optional[int] = None,
    ) -> None:
        if not isinstance(discriminator, nn.Module):
            raise ValueError(f"the discriminator must be a torch nn.Module, got {type(discriminator).__name__}")
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must lie in [0, 1), got {label_smoothing}")
        if replay_size < 0:
            raise ValueError(f"replay_size must be >= 0, got {replay_size}")
        if not 0.0 <= replay_fraction <= 1.0:
            raise ValueError(f"replay_fraction must lie in [0, 1], got {replay_fraction}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if generator is not None and seed is not None:
            raise ValueError("pass either generator or seed, not both")
        if device is not None:
            discriminator.to(device)
        self.discriminator = discriminator
        self.device = next(discriminator.parameters()).device
        self.lr, self.weight_decay, self.label_smoothing = lr, weight_decay, label_smoothing
        self.replay_size, self.replay_fraction, self.batch_size = int(replay_size), replay_fraction, int(batch_size)
        self.max_grad_norm = max_grad_norm
        self.optimizer = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=betas, weight_decay=weight_decay)
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0 if seed is None else seed)
        self.total_steps = 0
        # getattr: nn.Module's __getattr__ types other attributes as Tensor | Module, not int
        self.pad_id = int(getattr(discriminator, "vocab_size"))  # noqa: B009
        width = int(getattr(discriminator, "max_length"))  # noqa: B009
        self.replay_tokens = torch.full((0, width), self.pad_id, dtype=torch.long, device=self.device)
        self.replay_lengths = torch.zeros(0, dtype=torch.long, device=self.device)

    # ------------------------------------------------------------------ helpers
    def _prepare(self, tokens: torch.Tensor, lengths: Optional[torch.Tensor], side: str) -> Tuple[torch.Tensor, torch.Tensor]:
        """Check shapes and pad to ``max_length`` columns: ``(N, T), (N,) -> (N, max_length), (N,)``."""
        tokens = torch.as_tensor(tokens)
        if tokens.dim() != 2:
            raise ValueError(f"{side}_tokens must be a (N, T) tensor, got shape {tuple(tokens.shape)}")
        if tokens.shape[0] == 0:
            raise ValueError(f"empty batch: {side}_tokens has 0 rows; the trainer needs real and fake sequences")
        width = self.replay_tokens.shape[1]
        N, T = tokens.shape
        if T > width:
            raise ValueError(f"{side} sequence length {T} exceeds the discriminator's max_length {width}")
        if lengths is None:
            lengths = torch.full((N,), T, dtype=torch.long)
        lengths = torch.as_tensor(lengths)
        if tuple(lengths.shape) != (N,):
            raise ValueError(f"{side}_lengths must have shape ({N},), got {tuple(lengths.shape)}")
        check = getattr(self.discriminator, "check_inputs", None)
        if check is not None:  # ids in [0, V], lengths in [1, T]; padding set to the pad id
            try:
                tokens, lengths, _ = check(tokens, lengths)
            except ValueError as exc:
                raise ValueError(f"{side} sequences: {exc}") from exc
        tokens = tokens.to(self.device, torch.long)
        lengths = lengths.to(self.device, torch.long)
        if T < width:
            tokens = F.pad(tokens, (0, width - T), value=self.pad_id)
        return tokens, lengths

    def _replay(self, fake: torch.Tensor, fake_len: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, int]:
        """Mix past fakes into this call's fake side, then store this call's fakes."""
        n_replayed = 0
        mixed, mixed_len = fake, fake_len
        n_buf = self.replay_tokens.shape[0]
        if n_buf > 0 and self.replay_fraction > 0:
            n = fake.shape[0]
            n_replayed = int(round(self.replay_fraction * n))
            if n_replayed > 0:
                keep = torch.randperm(n, generator=self.generator)[: n - n_replayed].to(self.device)
                draw = torch.randint(n_buf, (n_replayed,), generator=self.generator).to(self.device)
                mixed = torch.cat([fake[keep], self.replay_tokens[draw]])
                mixed_len = torch.cat([fake_len[keep], self.replay_lengths[draw]])
        # Store this call's fakes: append while there is room, then replace random entries.
        room = self.replay_size - n_buf
        if room > 0:
            self.replay_tokens = torch.cat([self.replay_tokens, fake[:room]])
            self.replay_lengths = torch.cat([self.replay_lengths, fake_len[:room]])
        rest = fake.shape[0] - max(room, 0)
        if rest > 0 and self.replay_size > 0:
            slots = torch.randint(self.replay_size, (rest,), generator=self.generator).to(self.device)
            self.replay_tokens[slots] = fake[fake.shape[0] - rest :]
            self.replay_lengths[slots] = fake_len[fake.shape[0] - rest :]
        return mixed, mixed_len, n_replayed

    # ------------------------------------------------------------------ training
    def step(
        self,
        real_tokens: torch.Tensor,
        real_lengths: Optional[torch.Tensor],
        fake_tokens: torch.Tensor,
        fake_lengths: Optional[torch.Tensor],
        k: int = 1,
    ) -> Dict[str, float]:
        """``k`` passes of minibatch BCE updates over the given real and fake sequences.

        Args:
            real_tokens: ``(N_r, T_r)`` int64 real sequences (pad id ``V`` past their lengths).
            real_lengths: ``(N_r,)`` int64 or None (all positions valid).
            fake_tokens: ``(N_f, T_f)`` int64 generated sequences.
            fake_lengths: ``(N_f,)`` int64 or None.
            k: number of passes (epochs) over the set; ``k`` updates when it fits in one batch.

        Returns:
            dict of floats: ``loss``, ``acc_real``, ``acc_fake``, ``steps``, ``total_steps``,
            ``n_real``, ``n_fake``, ``n_replayed``.

        Raises:
            ValueError: bad inputs (also those the discriminator rejects).
            DivergenceError: a non-finite loss or logit (the update is not applied).
        """
        if int(k) < 1:
            raise ValueError(f"k (passes over the data) must be >= 1, got {k}")
        real, real_len = self._prepare(real_tokens, real_lengths, "real")
        fake, fake_len = self._prepare(fake_tokens, fake_lengths, "fake")
        if self.replay_size > 0:
            fake, fake_len, n_replayed = self._replay(fake, fake_len)
        else:
            n_replayed = 0
        tokens = torch.cat([real, fake])
        lengths = torch.cat([real_len, fake_len])
        is_real = torch.cat([torch.ones(real.shape[0], dtype=torch.bool, device=self.device),
                             torch.zeros(fake.shape[0], dtype=torch.bool, device=self.device)])
        targets = is_real.float() * (1.0 - self.label_smoothing)
        width = int(lengths.max().clamp(min=1))  # trim columns that are padding in every row
        tokens = tokens[:, :width]
        M = tokens.shape[0]

        disc = self.discriminator
        was_training = disc.training
        disc.train()
        loss_sum = torch.zeros((), device=self.device)
        right_real = torch.zeros((), device=self.device)
        right_fake = torch.zeros((), device=self.device)
        seen_real = seen_fake = 0
        steps = 0
        try:
            for _ in range(int(k)):
                perm = torch.randperm(M, generator=self.generator).to(self.device)
                for start in range(0, M, self.batch_size):
                    idx = perm[start : start + self.batch_size]
                    update = self.total_steps + 1
                    try:
                        logits = disc(tokens[idx], lengths[idx])
                    except DivergenceError as exc:
                        raise DivergenceError(f"discriminator update {update}: {exc}") from exc
                    loss = F.binary_cross_entropy_with_logits(logits, targets[idx])
                    if not bool(torch.isfinite(loss)):
                        raise DivergenceError(
                            f"discriminator loss is {float(loss)} at update {update} (call's step {steps + 1}); "
                            "lower the learning rate or restore a checkpoint"
                        )
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if self.max_grad_norm is not None:
                        nn.utils.clip_grad_norm_(disc.parameters(), self.max_grad_norm)
                    self.optimizer.step()
                    self.total_steps += 1
                    steps += 1
                    with torch.no_grad():
                        r = is_real[idx]
                        loss_sum += loss.detach() * idx.numel()
                        right_real += ((logits > 0) & r).sum()
                        right_fake += ((logits < 0) & ~r).sum()
                        n_r = int(r.sum())
                        seen_real += n_r
                        seen_fake += idx.numel() - n_r
        finally:
            disc.train(was_training)
        return {
            "loss": float(loss_sum) / max(seen_real + seen_fake, 1),
            "acc_real": float(right_real) / max(seen_real, 1),
            "acc_fake": float(right_fake) / max(seen_fake, 1),
            "steps": steps,
            "total_steps": self.total_steps,
            "n_real": int(real.shape[0]),
            "n_fake": int(fake.shape[0]),
            "n_replayed": n_replayed,
        }

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> Dict[str, Any]:
        """Everything needed to resume: discriminator, optimizer, shuffling RNG, replay buffer, counter."""
        return {
            "discriminator": self.discriminator.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "replay_tokens": self.replay_tokens.detach().cpu().clone(),
            "replay_lengths": self.replay_lengths.detach().cpu().clone(),
            "total_steps": self.total_steps,
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (tensors are moved to this trainer's device)."""
        missing = {"discriminator", "optimizer", "generator", "replay_tokens", "replay_lengths", "total_steps"} - set(state)
        if missing:
            raise ValueError(f"trainer state lacks {sorted(missing)}")
        self.discriminator.load_state_dict(state["discriminator"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.replay_tokens = state["replay_tokens"].to(self.device, torch.long).clone()
        self.replay_lengths = state["replay_lengths"].to(self.device, torch.long).clone()
        self.total_steps = int(state["total_steps"])
