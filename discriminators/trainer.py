"""The one discriminator trainer: binary cross-entropy on real vs generated sequences.

Each call of :meth:`DiscriminatorTrainer.step` builds a labelled set from the given real
sequences (target ``1 - label_smoothing``) and fake sequences (target 0), shuffles it with the
trainer's seeded ``torch.Generator`` and makes ``k`` passes (epochs) over it in minibatches of
``batch_size`` mixed sequences, one Adam update per minibatch:

    L(θ) = -1/B Σ_i [ y_i log σ(D_θ(x_i)) + (1 - y_i) log(1 - σ(D_θ(x_i))) ] + R(θ)
    θ ← Adam(θ, ∇L)

``R(θ)`` is the discriminator's own ``regularization()`` (0 for most; SeqGAN's L2 penalty on
the CNN's output layer).

Positions (``positions``): ``"last"`` trains the logit of the whole sequence, D(x_{≤L}).
``"all"`` (the default for discriminators with per-prefix scores, ``supports_prefixes``, such
as ``rnn``, whose per-prefix logits are what dense rewards read; ScratchGAN sums its loss over
positions) trains the logit of every prefix: with ``D_t`` the training-mode logit of
``x_{≤t}`` (``forward_prefixes``) and weights ``w_t`` (``position_weights``, default 1),

    L(θ) = Σ_i Σ_{t < L_i} w_t BCE(D_t(x_i), y_i) / Σ_i Σ_{t < L_i} w_t + R(θ)

the (weighted) mean over every valid prefix position of the minibatch.

This is SeqGAN's schedule: each round trains ``k = 3`` epochs over 10,000 real and 10,000
fresh generated sequences with batch 64. When the set fits in one minibatch (``N_real +
N_fake <= batch_size``), ``k`` passes are ``k`` minibatch updates on the same batch.

Replay (``replay_size > 0``): a buffer of up to ``replay_size`` past fake sequences. Once it
holds any, a fraction ``replay_fraction`` of this call's fake side is replaced by sequences
drawn from it (so the two classes stay balanced); after the call all of this call's fakes enter
the buffer (random replacement when full, the image history of Shrivastava et al. 2017).

Statistics (on the minibatches used, measured by the training-mode forward pass that precedes
each update): ``loss`` (the mean BCE term of the objective, without ``R``), ``reg`` (mean
``R``), ``acc_real`` / ``acc_fake`` (fraction of real with logit > 0 / fake with logit < 0 at
the last valid position, a logit of exactly 0 counting one half for either class),
``acc_by_position`` (with ``positions="all"``: per position t, the balanced accuracy over the
rows with t < length; NaN where a class has no such row), ``steps`` (updates in this call),
``total_steps``, ``n_real``, ``n_fake``, ``n_replayed``. A non-finite loss or logit raises
:class:`~discriminators.base.DivergenceError` naming the update number, before that update is
applied.

Held-out evaluation is :mod:`discriminators.evaluation` (:meth:`DiscriminatorTrainer.evaluate`
calls it on the trainer's discriminator).
"""
from __future__ import annotations

import warnings
from typing import Any, Dict, Iterator, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from discriminators.base import DivergenceError, load_optimizer_state
from discriminators.evaluation import balanced_by_position, correct, evaluate, per_position_sums, right_calls
from discriminators.graphed import (
    LOSS,
    NONFINITE,
    REG,
    RIGHT_FAKE,
    RIGHT_REAL,
    GraphedUpdates,
    UpdateBody,
    graph_capturable,
    init_adam_state,
)

POSITIONS = ("last", "all")

#: Precisions of training (``precision``). ``bfloat16`` runs each update's forward pass under
#: ``torch.autocast(bfloat16)``: matrix products and convolutions in bfloat16, the weights,
#: their gradients, Adam and the loss in float32 (mixed precision). It pays on a CPU with native
#: bfloat16 (AVX512-BF16, AMX) or a GPU; its speed and held-out accuracy against float32 are
#: measured in ``bench/discriminator.py``.
PRECISIONS = ("float32", "bfloat16")


class DiscriminatorTrainer:
    """Trains any discriminator of this package (a module mapping ``(N, T), (N,) -> (N,)`` logits).

    Args:
        discriminator: the model, a ``torch.nn.Module``; moved to ``device`` if one is given.
            Anything else (a no-information control of :mod:`discriminators.controls`, a fixed
            scorer) has nothing to train and is refused with ValueError.
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
        positions: ``"last"`` (train the whole sequence's logit) or ``"all"`` (train every
            prefix's logit; needs ``supports_prefixes`` and ``forward_prefixes``). Default:
            ``"all"`` for a discriminator with per-prefix scores, else ``"last"``.
        position_weights: with ``positions="all"``, ``(max_length,)`` non-negative weights
            ``w_t`` of the positions (None: uniform over the valid positions).
        cuda_graph: replay each minibatch update as one captured CUDA graph
            (:mod:`discriminators.graphed`: a non-finite loss is then caught at the end of the
            call, which restores the discriminator's weights and its optimizer's state as they
            were when the call began; the replay buffer and the shuffle keep the call's draws).
            None: on for a CUDA device when the discriminator is ``graph_capturable`` and
            ``positions="last"``.
        precision: ``"float32"`` (default) or ``"bfloat16"`` mixed precision, see
            :data:`PRECISIONS`.
        compile: compile the captured update's forward, loss and backward with ``torch.compile``
            (fewer, fused kernels: see :class:`~discriminators.graphed.UpdateBody`); needs the
            captured CUDA update (``cuda_graph``) and, on CUDA, triton. The first updates of each
            minibatch shape pay the compilation.
    """

    def __init__(
        self,
        discriminator: object,
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
        positions: Optional[str] = None,
        position_weights: Optional[torch.Tensor] = None,
        cuda_graph: Optional[bool] = None,
        precision: str = "float32",
        compile: bool = False,
    ) -> None:
        if not isinstance(discriminator, nn.Module):
            raise ValueError(
                f"the discriminator must be a torch nn.Module, got {type(discriminator).__name__}: a fixed scorer "
                "(such as the 'constant' and 'random' controls) has no parameters and is never trained"
            )
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
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0 if seed is None else seed)
        self.total_steps = 0
        # getattr: nn.Module's __getattr__ types other attributes as Tensor | Module, not int
        sizes = {k: getattr(discriminator, k, None) for k in ("vocab_size", "max_length")}
        missing = [k for k, v in sizes.items() if not isinstance(v, int)]
        if missing:
            raise ValueError(f"a trained discriminator needs the int attributes vocab_size and max_length (its pad id and "
                             f"width); {type(discriminator).__name__} lacks {missing}")
        self.pad_id = int(sizes["vocab_size"])  # type: ignore[arg-type]
        width = int(sizes["max_length"])  # type: ignore[arg-type]
        self.replay_tokens = torch.full((0, width), self.pad_id, dtype=torch.long, device=self.device)
        self.replay_lengths = torch.zeros(0, dtype=torch.long, device=self.device)
        per_prefix = bool(getattr(discriminator, "supports_prefixes", False)) and callable(
            getattr(discriminator, "forward_prefixes", None))
        if positions is None:
            positions = "all" if per_prefix else "last"
        if positions not in POSITIONS:
            raise ValueError(f"positions must be one of {list(POSITIONS)}, got {positions!r}")
        if positions == "all" and not per_prefix:
            raise ValueError(
                f"positions='all' trains the logit of every prefix and needs a discriminator with per-prefix "
                f"scores (supports_prefixes and forward_prefixes); {type(discriminator).__name__} has none: "
                "use positions='last'"
            )
        self.positions = positions
        self.position_weights: Optional[torch.Tensor] = None
        if position_weights is not None:
            if positions != "all":
                raise ValueError("position_weights apply to positions='all' only")
            w = torch.as_tensor(position_weights, dtype=torch.float32)
            if tuple(w.shape) != (width,):
                raise ValueError(f"position_weights must have shape (max_length,) = ({width},), got {tuple(w.shape)}")
            if not bool(torch.isfinite(w).all()) or bool((w < 0).any()) or float(w.sum()) <= 0:
                raise ValueError("position_weights must be finite, >= 0 and not all 0")
            self.position_weights = w.to(self.device)
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
        self.precision = precision
        capturable = graph_capturable(discriminator, positions)
        if cuda_graph is None:
            cuda_graph = self.device.type == "cuda" and capturable
        elif cuda_graph and self.device.type != "cuda":
            raise ValueError(f"cuda_graph=True needs a CUDA device; the discriminator is on {self.device}")
        elif cuda_graph and not capturable:
            raise ValueError(
                f"cuda_graph=True needs positions='last' and a discriminator that declares graph_capturable "
                f"(no host sync in encode and head); {type(discriminator).__name__} with positions={positions!r} is not"
            )
        self.cuda_graph = bool(cuda_graph)
        if compile and self.cuda_graph and torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32:
            warnings.warn("compile=True: compiled, the CNN's window product runs in the float32 matrix products' "
                          "precision (IEEE here) instead of cuDNN's (TF32), and the update is slower than uncompiled; "
                          "allow TF32 matrix products for its speed (train.py --tf32 true)", stacklevel=2)
        if compile and not self.cuda_graph:
            raise ValueError(f"compile=True compiles the captured CUDA update (cuda_graph): a CUDA device and a "
                             f"discriminator that declares graph_capturable, trained at positions='last'; here the "
                             f"device is {self.device} and positions {positions!r}")
        self.optimizer = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=betas, weight_decay=weight_decay,
                                          fused=True,  # one pass over the (large) CNN's parameters
                                          capturable=self.cuda_graph)
        self._stats = torch.zeros(5, device=self.device)  # graphed.LOSS ... graphed.NONFINITE
        body = UpdateBody(discriminator, self.optimizer, self._stats, max_grad_norm, compile=compile, precision=precision)
        self._graphed = GraphedUpdates(body, self.optimizer) if self.cuda_graph else None

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
            slots = torch.randint(self.replay_size, (rest,), generator=self.generator)
            # A slot drawn twice keeps the later fake, as a sequential write would: CUDA leaves the
            # order of duplicate writes undefined, so the duplicates are resolved here, on the CPU.
            last = torch.full((self.replay_size,), -1, dtype=torch.long).scatter_reduce_(0, slots, torch.arange(rest), "amax")
            written = (last >= 0).nonzero().squeeze(1)
            src = (last[written] + (fake.shape[0] - rest)).to(self.device)
            written = written.to(self.device)
            self.replay_tokens[written] = fake[src]
            self.replay_lengths[written] = fake_len[src]
        return mixed, mixed_len, n_replayed

    # ------------------------------------------------------------------ training
    def _objective(
        self, tokens: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """The BCE term of one minibatch in the current mode: (loss, last-position logits (B,),
        per-prefix logits (B, T) or None)."""
        disc = self.discriminator
        if self.positions == "last":
            logits = disc(tokens, lengths)
            return F.binary_cross_entropy_with_logits(logits, targets), logits, None
        forward_prefixes = getattr(disc, "forward_prefixes")  # noqa: B009 (checked in __init__)
        prefix_logits = forward_prefixes(tokens, lengths)  # (B, T), columns >= length repeat the last
        T = prefix_logits.shape[1]
        weights = (torch.arange(T, device=self.device)[None, :] < lengths[:, None]).float()
        if self.position_weights is not None:
            weights = weights * self.position_weights[:T]
        bce = F.binary_cross_entropy_with_logits(prefix_logits, targets[:, None].expand(-1, T), reduction="none")
        # a minibatch whose valid positions all weigh 0 contributes 0 (and no gradient)
        loss = (bce * weights).sum() / weights.sum().clamp(min=torch.finfo(weights.dtype).tiny)
        logits = prefix_logits.gather(1, (lengths - 1)[:, None]).squeeze(1)
        return loss, logits, prefix_logits

    def _regularization(self) -> torch.Tensor:
        reg = getattr(self.discriminator, "regularization", None)
        return torch.zeros((), device=self.device) if reg is None else reg().to(self.device)

    def step(
        self,
        real_tokens: torch.Tensor,
        real_lengths: Optional[torch.Tensor],
        fake_tokens: torch.Tensor,
        fake_lengths: Optional[torch.Tensor],
        k: int = 1,
    ) -> Dict[str, Any]:
        """``k`` passes of minibatch BCE updates over the given real and fake sequences.

        Args:
            real_tokens: ``(N_r, T_r)`` int64 real sequences (pad id ``V`` past their lengths).
            real_lengths: ``(N_r,)`` int64 or None (all positions valid).
            fake_tokens: ``(N_f, T_f)`` int64 generated sequences.
            fake_lengths: ``(N_f,)`` int64 or None.
            k: number of passes (epochs) over the set; ``k`` updates when it fits in one batch.

        Returns:
            dict: floats ``loss`` (the BCE term), ``reg``, ``acc_real``, ``acc_fake``,
            ``steps``, ``total_steps``, ``n_real``, ``n_fake``, ``n_replayed``; with
            ``positions="all"`` also ``acc_by_position`` (a list of floats, one per position).

        Raises:
            ValueError: bad inputs (also those the discriminator rejects).
            DivergenceError: a non-finite loss or logit (the update is not applied; with
                ``cuda_graph``, the weights and optimizer state the call began with are restored;
                the replay buffer keeps the call's fakes and the shuffle generator has advanced).
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
        reg_sum = torch.zeros((), device=self.device)
        right = torch.zeros(2, device=self.device)  # real, fake
        pos_right = torch.zeros(2, width, device=self.device)
        pos_seen = torch.zeros(2, width, device=self.device)
        steps = 0
        try:
            if self._graphed is not None:
                loss_sum, reg_sum, right, steps = self._graphed_passes(tokens, lengths, targets, is_real, int(k))
            else:
                for idx in self._minibatches(M, int(k)):
                    update = self.total_steps + 1
                    try:
                        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bfloat16"):
                            loss, logits, prefix_logits = self._objective(tokens[idx], lengths[idx], targets[idx])
                    except DivergenceError as exc:
                        raise DivergenceError(f"discriminator update {update}: {exc}") from exc
                    reg = self._regularization()
                    total = loss + reg
                    if not bool(torch.isfinite(total)):
                        raise DivergenceError(
                            f"discriminator loss is {float(loss)} (regularization {float(reg)}) at update {update} "
                            f"(call's step {steps + 1}); lower the learning rate or restore a checkpoint"
                        )
                    self.optimizer.zero_grad(set_to_none=True)
                    total.backward()
                    if self.max_grad_norm is not None:
                        nn.utils.clip_grad_norm_(disc.parameters(), self.max_grad_norm)
                    self.optimizer.step()
                    self.total_steps += 1
                    steps += 1
                    with torch.no_grad():
                        r = is_real[idx]
                        loss_sum += loss.detach() * idx.numel()
                        reg_sum += reg.detach()
                        right += right_calls(logits.detach(), r)
                        if prefix_logits is not None:
                            valid = torch.arange(width, device=self.device)[None, :] < lengths[idx][:, None]
                            ok_t = correct(prefix_logits.detach(), r[:, None].expand(-1, width))
                            pr, ps = per_position_sums(ok_t, valid, r)
                            pos_right += pr
                            pos_seen += ps
        finally:
            disc.train(was_training)
        # every pass visits each row once: no count per minibatch (on a GPU, one host sync each)
        seen_real, seen_fake = int(k) * real.shape[0], int(k) * fake.shape[0]
        stats: Dict[str, Any] = {
            "loss": float(loss_sum) / max(seen_real + seen_fake, 1),
            "reg": float(reg_sum) / max(steps, 1),
            "acc_real": float(right[0]) / max(seen_real, 1),
            "acc_fake": float(right[1]) / max(seen_fake, 1),
            "steps": steps,
            "total_steps": self.total_steps,
            "n_real": int(real.shape[0]),
            "n_fake": int(fake.shape[0]),
            "n_replayed": n_replayed,
        }
        if self.positions == "all":
            stats["acc_by_position"] = balanced_by_position(pos_right.cpu(), pos_seen.cpu())
        return stats

    def _minibatches(self, M: int, k: int) -> Iterator[torch.Tensor]:
        """Row ids of each minibatch of ``k`` passes over ``M`` rows, each pass in a fresh shuffle
        drawn from the trainer's generator."""
        for _ in range(k):
            perm = torch.randperm(M, generator=self.generator).to(self.device)
            for start in range(0, M, self.batch_size):
                yield perm[start : start + self.batch_size]

    def _graphed_passes(self, tokens: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor, is_real: torch.Tensor,
                        k: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        """``k`` passes of :mod:`discriminators.graphed` updates: (BCE sum, regularization sum,
        right calls (real, fake), updates). One host sync, at the end, reads the non-finite count;
        if it is not 0 the weights and optimizer state the call began with are restored and
        DivergenceError raised."""
        assert self._graphed is not None
        init_adam_state(self.optimizer)  # so that the snapshot holds it, and a captured step finds it
        moments = [v for per_param in self.optimizer.state.values() for v in per_param.values() if torch.is_tensor(v)]
        snapshot = [(t, t.detach().clone()) for t in [*self.discriminator.parameters(), *moments]]
        self._stats.zero_()
        steps = 0
        for idx in self._minibatches(tokens.shape[0], k):
            self._graphed.run((tokens, lengths, targets, is_real), idx)
            steps += 1
        stats = self._stats.cpu()
        if stats[NONFINITE] > 0:
            with torch.no_grad():
                for t, saved in snapshot:
                    t.copy_(saved)
            raise DivergenceError(
                f"the discriminator's loss or logits were not finite in {int(stats[NONFINITE])} of this call's {steps} "
                f"updates (after update {self.total_steps}); its weights and optimizer are restored to their state before "
                "the call; lower the learning rate or restore a checkpoint"
            )
        self.total_steps += steps
        return stats[LOSS], stats[REG], stats[RIGHT_REAL : RIGHT_FAKE + 1], steps

    def evaluate(
        self,
        real_tokens: torch.Tensor,
        real_lengths: Optional[torch.Tensor],
        fake_tokens: torch.Tensor,
        fake_lengths: Optional[torch.Tensor],
        *,
        batch_size: int = 1024,
    ) -> Dict[str, Any]:
        """Held-out evaluation of the trainer's discriminator (:func:`evaluate`): eval mode, no
        gradient, no update, no draw from the trainer's generator or the global RNG; the
        discriminator's mode is restored.

        Returns:
            dict: ``loss`` (BCE at the last position, hard labels, class-balanced), ``acc_real``,
            ``acc_fake``, ``balanced_acc``, ``n_real``, ``n_fake`` and, for a per-prefix
            discriminator, ``acc_by_position``.
        """
        return evaluate(self.discriminator, real_tokens, real_lengths, fake_tokens, fake_lengths, batch_size=batch_size)

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
        load_optimizer_state(self.optimizer, state["optimizer"], capturable=self.cuda_graph)  # whoever saved it
        if self._graphed is not None:
            self._graphed.reset()  # the graphs hold the replaced state tensors' addresses
        self.generator.set_state(state["generator"])
        self.replay_tokens = state["replay_tokens"].to(self.device, torch.long).clone()
        self.replay_lengths = state["replay_lengths"].to(self.device, torch.long).clone()
        self.total_steps = int(state["total_steps"])
