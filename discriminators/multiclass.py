"""A multi-class discriminator for class-conditional generation (k real classes + fake).

CatGAN and SentiGAN-style training judge a generated sequence not only as real or fake but
as a member of its target class. This discriminator reads a sequence with the encoder of one
of the package's models (the RNN's final state or the CNN's pooled features) and a
``(k + 1)``-way linear head:

    z = W · dropout(encode(x)) + b          (k + 1,) logits; z_c for real class c < k, z_k for fake
    p = softmax(z)

- the class reward of a sequence meant to be of class c is ``p_c``
  (:meth:`MultiClassDiscriminator.class_reward`);
- ``forward`` / ``score`` return the binary logit of P(real) = Σ_{c<k} p_c against p_k,
  ``logsumexp(z_{<k}) - z_k``, so the model is also a plain discriminator of the
  :class:`~textgym.protocols.Discriminator` protocol (``is_probabilistic``);
- :class:`MultiClassTrainer` trains it with cross-entropy: real sequences labelled with their
  class, generated ones with the fake class ``k``.

Build one with :func:`make_multiclass` (names ``"multiclass-rnn"``, ``"multiclass-cnn"``; the
encoder's options as in :func:`discriminators.make`), or wrap an encoder yourself. The
encoder's own one-logit output layer is left unused. These models are not in
:data:`discriminators.REGISTRY`: that registry holds the binary discriminators that the env,
the agents and ``train.py --discriminator`` build by name.
"""
from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Dict, List, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from discriminators.base import BaseDiscriminator, DivergenceError, seeded
from discriminators.cnn import CNNDiscriminator
from discriminators.evaluation import correct_class
from discriminators.rnn import RNNDiscriminator

__all__ = ["MULTICLASS_REGISTRY", "MultiClassDiscriminator", "MultiClassTrainer", "make_multiclass"]

#: name -> encoder class; :func:`make_multiclass` resolves names here.
MULTICLASS_REGISTRY: Dict[str, Callable[..., BaseDiscriminator]] = {
    "multiclass-rnn": RNNDiscriminator,
    "multiclass-cnn": CNNDiscriminator,
}


def _check_count(num_classes: Any) -> int:
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be an integer >= 1 (the real classes, without fake), got {num_classes!r}")
    return num_classes


def check_classes(classes: Any, n: int, num_classes: int, device: Union[str, torch.device, None] = None,
                  name: str = "classes") -> torch.Tensor:
    """Validate ``(n,)`` integer class ids in ``[0, num_classes)``; returns them as int64 on ``device``.

    Raises:
        ValueError: naming ``name``: not integer, a wrong shape, or an id out of range.
    """
    c = classes if torch.is_tensor(classes) else torch.as_tensor(classes)
    if c.dtype.is_floating_point or c.dtype.is_complex or c.dtype == torch.bool:
        raise ValueError(f"{name} must be integer class ids, got dtype {c.dtype}")
    if tuple(c.shape) != (n,):
        raise ValueError(f"{name} must have shape ({n},) (one class id per sequence), got {tuple(c.shape)}")
    c = c.to(device=device, dtype=torch.long)
    if n:
        lo, hi = int(c.min()), int(c.max())
        if lo < 0 or hi >= num_classes:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{name}: class id {bad} is out of range for {num_classes} classes "
                             f"(valid ids: 0..{num_classes - 1})")
    return c


class MultiClassDiscriminator(BaseDiscriminator):
    """k real classes + 1 fake class over token sequences.

    Args:
        encoder: a model of this package whose ``encode`` gives ``(N, F)`` features and which
            has ``feature_dim`` (an :class:`RNNDiscriminator` or :class:`CNNDiscriminator`);
            its vocabulary and ``max_length`` are this model's.
        num_classes: k, the real classes; the fake class has id ``k`` (:attr:`fake_class`).
        dropout: dropout on the features before the head (default: the encoder's ``dropout_p``).

    ``forward_classes`` / ``score_classes (N, T), (N,) -> (N, k + 1)`` logits,
    ``class_probs -> (N, k + 1)``, ``class_reward(tokens, lengths, classes) -> (N,)``,
    ``forward`` / ``score -> (N,)`` logits of P(real), ``features -> (N, F)``.
    """

    is_probabilistic = True
    supports_prefixes = False

    def __init__(self, encoder: BaseDiscriminator, num_classes: int, *, dropout: Optional[float] = None) -> None:
        if not isinstance(encoder, BaseDiscriminator) or not isinstance(getattr(encoder, "feature_dim", None), int):
            raise ValueError(f"the encoder must be a discriminator of this package with an int feature_dim, "
                             f"got {type(encoder).__name__}")
        super().__init__(encoder.vocab_size, encoder.max_length)
        self.num_classes = _check_count(num_classes)
        p = float(getattr(encoder, "dropout_p", 0.0) if dropout is None else dropout)
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {p}")
        self.encoder = encoder
        self.feature_dim: int = int(getattr(encoder, "feature_dim"))  # noqa: B009 (checked above)
        self.dropout_p = p
        self.dropout = nn.Dropout(p)
        self.class_head = nn.Linear(self.feature_dim, self.num_classes + 1)

    @property
    def fake_class(self) -> int:
        """The id of the fake class, ``k``."""
        return self.num_classes

    # ------------------------------------------------------------------ the model
    def encode(self, tokens: torch.Tensor, lengths: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return self.encoder.encode(tokens, lengths, valid)

    def class_logits_of(self, features: torch.Tensor) -> torch.Tensor:
        """``(..., F)`` features -> ``(..., k + 1)`` logits (dropout, then the head)."""
        return self.class_head(self.dropout(features))

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """``(..., F)`` -> ``(...)`` logit of P(real): ``logsumexp(z_{<k}) - z_k``."""
        z = self.class_logits_of(features)
        return torch.logsumexp(z[..., : self.num_classes], dim=-1) - z[..., self.num_classes]

    def forward_classes(self, tokens: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The ``(N, k + 1)`` class logits, differentiable, in the module's current mode.

        Args:
            tokens: ``(N, T)`` int64 ids in ``[0, V]``.
            lengths: ``(N,)`` int64 in ``[1, T]`` or None (all positions valid).
        """
        tokens, lengths, valid = self.check_inputs(tokens, lengths)
        return self.check_output(self.class_logits_of(self.encode(tokens, lengths, valid)))

    # ------------------------------------------------------------------ scoring (rewards)
    def score_classes(self, tokens: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """:meth:`forward_classes` for rewards: eval mode, no gradient, mode restored. ``(N, k + 1)``."""
        with self.scoring():
            return self.forward_classes(tokens, lengths)

    def class_probs(self, tokens: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``softmax`` of :meth:`score_classes`: ``(N, k + 1)``, each row summing to 1 (column k: fake)."""
        return torch.softmax(self.score_classes(tokens, lengths), dim=-1)

    def class_reward(self, tokens: torch.Tensor, lengths: Optional[torch.Tensor], classes: Any) -> torch.Tensor:
        """The reward of each sequence for its target class: the probability of that class.

        Args:
            tokens: ``(N, T)`` int64 ids in ``[0, V]``.
            lengths: ``(N,)`` int64 in ``[1, T]`` or None.
            classes: ``(N,)`` target class ids in ``[0, k)`` (e.g. the env's ``classes``).

        Returns:
            ``(N,)`` float ``softmax(z)[i, classes[i]]`` in ``[0, 1]``, on the module's device,
            computed in eval mode without gradient.

        Raises:
            ValueError: bad tokens or lengths, or classes of the wrong shape, dtype or range.
        """
        probs = self.class_probs(tokens, lengths)
        c = check_classes(classes, probs.shape[0], self.num_classes, probs.device)
        return probs.gather(1, c[:, None]).squeeze(1)

    # ------------------------------------------------------------------ checks
    def check_num_classes(self, other: Any, what: Optional[str] = None) -> None:
        """ValueError unless ``other`` (an int, or an object with ``num_classes``: a labelled data
        set, a class-conditional env) has this model's k classes; ``what`` names it in the message."""
        what = what or ("the data/env" if not isinstance(other, int) else "the caller")
        k = other if isinstance(other, int) and not isinstance(other, bool) else getattr(other, "num_classes", None)
        if k is None:
            raise ValueError(f"{what} ({type(other).__name__}) has no classes, but this discriminator has "
                             f"{self.num_classes} (+ fake); use labelled data or an env with classes=k")
        if int(k) != self.num_classes:
            raise ValueError(f"class count mismatch: the discriminator has {self.num_classes} classes (+ fake, "
                             f"{self.num_classes + 1} logits) but {what} has {int(k)}; build it with "
                             f"num_classes={int(k)}")

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, fake_class={self.fake_class}, dropout={self.dropout_p}"


def make_multiclass(name: str, vocab_size: int, num_classes: int, *, seed: Optional[int] = None,
                    **options: Any) -> MultiClassDiscriminator:
    """Build a multi-class discriminator by name.

    Args:
        name: ``"multiclass-rnn"`` (an :class:`RNNDiscriminator` encoder) or ``"multiclass-cnn"``
            (a :class:`CNNDiscriminator` encoder).
        vocab_size: ``V``; the pad id is ``V``.
        num_classes: k real classes (the model has k + 1 logits).
        seed: if given, the weights are initialized from it, leaving the global RNG as it was.
        **options: the encoder's keyword options (``max_length``, ``hidden``, ``cell``, ``size`` ...).

    Raises:
        ValueError: an unknown name or option (listing the valid ones), a bad ``num_classes``.
    """
    if name not in MULTICLASS_REGISTRY:
        raise ValueError(f"unknown multi-class discriminator {name!r}; valid names: {sorted(MULTICLASS_REGISTRY)}")
    _check_count(num_classes)
    cls = MULTICLASS_REGISTRY[name]
    accepted = [p for p in inspect.signature(cls).parameters if p != "vocab_size"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for {name!r}; accepted options: {accepted}")
    with seeded(seed):
        return MultiClassDiscriminator(cls(vocab_size, **options), num_classes)


class MultiClassTrainer:
    """Cross-entropy training of a :class:`MultiClassDiscriminator`: real sequences labelled with
    their class, generated ones with the fake class ``k``.

    Each :meth:`step` builds the labelled set, shuffles it with the trainer's seeded CPU
    ``torch.Generator`` and makes ``epochs`` passes over it in minibatches of ``batch_size``,
    one Adam update per minibatch, minimizing ``CE(z(x), y) + R`` (R the model's
    ``regularization()``, 0 here).

    Args:
        discriminator: the model (moved to ``device`` if given).
        lr, weight_decay: Adam's learning rate and L2 weight decay.
        batch_size: sequences per minibatch.
        max_grad_norm: clip the gradient norm to this (None: no clipping).
        device: where to train; default: the model's device.
        seed: seeds the shuffling generator.
    """

    def __init__(self, discriminator: MultiClassDiscriminator, *, lr: float = 1e-3, weight_decay: float = 0.0,
                 batch_size: int = 64, max_grad_norm: Optional[float] = None,
                 device: Union[str, torch.device, None] = None, seed: int = 0) -> None:
        if not isinstance(discriminator, MultiClassDiscriminator):
            raise ValueError(f"MultiClassTrainer trains a MultiClassDiscriminator, got {type(discriminator).__name__}")
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if device is not None:
            discriminator.to(device)
        self.discriminator = discriminator
        self.batch_size, self.max_grad_norm = int(batch_size), max_grad_norm
        self.optimizer = torch.optim.Adam(discriminator.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
        self.generator = torch.Generator().manual_seed(seed)
        self.total_steps = 0

    def _labelled_set(self, real: torch.Tensor, real_lengths: Optional[torch.Tensor], real_classes: Any,
                      fake: Optional[torch.Tensor], fake_lengths: Optional[torch.Tensor]):
        d = self.discriminator
        parts = []
        real, real_lengths, _ = d.check_inputs(real, real_lengths)
        parts.append((real, real_lengths, check_classes(real_classes, real.shape[0], d.num_classes, d.device,
                                                        "real_classes")))
        if fake is not None:
            fake, fake_lengths, _ = d.check_inputs(fake, fake_lengths)
            parts.append((fake, fake_lengths, torch.full((fake.shape[0],), d.fake_class, dtype=torch.long,
                                                         device=d.device)))
        T = max(t.shape[1] for t, _, _ in parts)
        tokens = torch.cat([F.pad(t, (0, T - t.shape[1]), value=d.pad_id) for t, _, _ in parts])
        return tokens, torch.cat([n for _, n, _ in parts]), torch.cat([y for _, _, y in parts])

    def step(self, real: torch.Tensor, real_lengths: Optional[torch.Tensor], real_classes: Any,
             fake: Optional[torch.Tensor] = None, fake_lengths: Optional[torch.Tensor] = None,
             epochs: int = 1) -> Dict[str, Any]:
        """Train on real ``(N_r, T)`` sequences of classes ``real_classes`` ``(N_r,)`` and fake
        ``(N_f, T')`` ones (optional).

        Returns:
            ``loss`` (mean cross-entropy), ``acc`` (fraction with the right argmax, a tie of m
            classes counting 1/m: :func:`~discriminators.evaluation.correct_class`), ``acc_real``
            (real rows called their own class), ``acc_fake`` (fake rows called fake; NaN without
            fakes), ``steps``, ``total_steps``, ``n_real``, ``n_fake``: measured by the
            training-mode forward pass before each update.

        Raises:
            ValueError: bad inputs (see :func:`check_classes` and ``check_inputs``), epochs < 1.
            DivergenceError: a non-finite loss (before that update is applied).
        """
        if not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
        d = self.discriminator
        tokens, lengths, targets = self._labelled_set(real, real_lengths, real_classes, fake, fake_lengths)
        n = tokens.shape[0]
        is_fake = targets == d.fake_class
        sums = {"loss": 0.0, "right": 0.0, "right_real": 0.0, "right_fake": 0.0, "seen_real": 0.0, "seen_fake": 0.0}
        steps = 0
        d.train()
        for _ in range(epochs):
            order = torch.randperm(n, generator=self.generator).to(tokens.device)
            for i in range(0, n, self.batch_size):
                idx = order[i : i + self.batch_size]
                z = d.forward_classes(tokens[idx], lengths[idx])
                y = targets[idx]
                loss = F.cross_entropy(z, y)
                objective = loss + d.regularization()
                if not bool(torch.isfinite(objective)):
                    raise DivergenceError(f"non-finite multi-class discriminator loss at update {self.total_steps + 1}")
                self.optimizer.zero_grad(set_to_none=True)
                objective.backward()
                if self.max_grad_norm is not None:
                    nn.utils.clip_grad_norm_(d.parameters(), self.max_grad_norm)
                self.optimizer.step()
                with torch.no_grad():
                    right = correct_class(z, y)
                    fk = is_fake[idx].float()
                    sums["loss"] += float(loss) * len(idx)
                    sums["right"] += float(right.sum())
                    sums["right_real"] += float((right * (1 - fk)).sum())
                    sums["right_fake"] += float((right * fk).sum())
                    sums["seen_real"] += float((1 - fk).sum())
                    sums["seen_fake"] += float(fk.sum())
                steps += 1
                self.total_steps += 1
        seen = sums["seen_real"] + sums["seen_fake"]
        ratio = lambda a, b: a / b if b else math.nan  # noqa: E731
        return {
            "loss": sums["loss"] / seen, "acc": sums["right"] / seen,
            "acc_real": ratio(sums["right_real"], sums["seen_real"]),
            "acc_fake": ratio(sums["right_fake"], sums["seen_fake"]),
            "steps": steps, "total_steps": self.total_steps,
            "n_real": int((~is_fake).sum()), "n_fake": int(is_fake.sum()),
        }

    def evaluate(self, real: torch.Tensor, real_lengths: Optional[torch.Tensor], real_classes: Any,
                 fake: Optional[torch.Tensor] = None, fake_lengths: Optional[torch.Tensor] = None) -> Dict[str, float]:
        """Held-out figures in eval mode without gradient: ``acc``, ``acc_real`` (real rows called
        their own class), ``acc_fake`` (fake rows called fake), as in :meth:`step` (NaN for a side
        without rows; 1/(k + 1) for a discriminator with equal logits), and ``loss``, the
        cross-entropy (the mean of the real and the fake rows' means, or the one side's)."""
        d = self.discriminator
        tokens, lengths, targets = self._labelled_set(real, real_lengths, real_classes, fake, fake_lengths)
        right: List[torch.Tensor] = []
        ce: List[torch.Tensor] = []
        for i in range(0, tokens.shape[0], 4096):
            z, y = d.score_classes(tokens[i : i + 4096], lengths[i : i + 4096]), targets[i : i + 4096]
            right.append(correct_class(z, y))
            ce.append(F.cross_entropy(z.float(), y, reduction="none"))
        r, loss = torch.cat(right), torch.cat(ce)
        fk = targets == d.fake_class
        mean = lambda x: float(x.mean()) if x.numel() else math.nan  # noqa: E731
        sides = [mean(loss[~fk])] + ([mean(loss[fk])] if bool(fk.any()) else [])
        return {"acc": mean(r), "acc_real": mean(r[~fk]), "acc_fake": mean(r[fk]), "loss": sum(sides) / len(sides)}
