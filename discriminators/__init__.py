"""Discriminators: torch models that score token sequences, and their trainer.

This package depends on torch only (``textgym`` uses it through the Discriminator protocol;
never the other way).

```python
import discriminators

d = discriminators.make("cnn", vocab_size=5000, max_length=20)        # SeqGAN's CNN
r = discriminators.make("rnn", vocab_size=5000, cell="gru", hidden=64)  # per-prefix scores
trainer = discriminators.DiscriminatorTrainer(d, lr=1e-4, batch_size=64, seed=0)
stats = trainer.step(real, real_len, fake, fake_len, k=3)   # 3 epochs over real + fake
reward_logits = d.score(tokens, lengths)                     # eval mode, no grad: (N,)
dense_logits = r.score_prefixes(tokens, lengths)             # (N, T), only if r.supports_prefixes
```

Registry names: ``cnn`` (:class:`CNNDiscriminator`), ``rnn`` (:class:`RNNDiscriminator`),
and the no-information controls ``constant`` (:class:`ConstantDiscriminator`: logit 0 for every
sequence and prefix) and ``random`` (:class:`RandomDiscriminator`: i.i.d. N(0, 1) logits
independent of the input, from its own generator seeded by its ``seed`` option). The controls
score like the models (``score``, ``score_prefixes``, ``is_probabilistic``, the same input
checks) but are not ``torch.nn.Module`` objects: they have no parameters and are never trained
(no :class:`DiscriminatorTrainer` takes them). They tell what an algorithm does with a
discriminator that carries no information about real vs generated text.

Multi-class discriminators (k real classes + fake, for class-conditional generation) are built
by :func:`make_multiclass` (``"multiclass-rnn"``, ``"multiclass-cnn"``; see
:mod:`discriminators.multiclass`), not by :func:`make`: :data:`REGISTRY` holds the binary ones.

Held-out evaluation of any of them: :func:`evaluate` (``balanced_acc`` 0.5 at chance), or
``trainer.evaluate`` for the trainer's own model.
"""
from __future__ import annotations

import inspect
from typing import Callable, Dict, List, Union

from discriminators.base import BaseDiscriminator, DivergenceError
from discriminators.cnn import CNNDiscriminator
from discriminators.controls import ConstantDiscriminator, NoInformationDiscriminator, RandomDiscriminator
from discriminators.multiclass import (
    MULTICLASS_REGISTRY,
    MultiClassDiscriminator,
    MultiClassTrainer,
    make_multiclass,
)
from discriminators.rnn import RNNDiscriminator
from discriminators.trainer import DiscriminatorTrainer, evaluate

#: what :func:`make` builds: a trainable model or a no-information control
AnyDiscriminator = Union[BaseDiscriminator, NoInformationDiscriminator]

#: name -> class; ``make`` resolves names here (the CLI and the env kwargs go through it).
REGISTRY: Dict[str, Callable[..., AnyDiscriminator]] = {
    "cnn": CNNDiscriminator,
    "rnn": RNNDiscriminator,
    "constant": ConstantDiscriminator,
    "random": RandomDiscriminator,
}


def available() -> List[str]:
    """The registered discriminator names, sorted."""
    return sorted(REGISTRY)


def make(name: str, vocab_size: int, **options: object) -> AnyDiscriminator:
    """Build a registered discriminator.

    Args:
        name: a key of :data:`REGISTRY` (``"cnn"``, ``"rnn"``, ``"constant"``, ``"random"``).
        vocab_size: ``V``; the pad id is ``V``.
        **options: keyword options of the class (``max_length``, ``size``, ``hidden``,
            ``seed`` of ``random`` ...).

    Raises:
        ValueError: an unknown name (listing the valid ones) or an unknown option (listing
            the accepted ones).
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown discriminator {name!r}; valid names: {available()}")
    cls = REGISTRY[name]
    params = inspect.signature(cls).parameters
    accepted = [p for p in params if p != "vocab_size"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for discriminator {name!r}; accepted options: {accepted}")
    return cls(vocab_size, **options)


__all__ = [
    "REGISTRY",
    "available",
    "make",
    "evaluate",
    "AnyDiscriminator",
    "BaseDiscriminator",
    "CNNDiscriminator",
    "RNNDiscriminator",
    "ConstantDiscriminator",
    "RandomDiscriminator",
    "NoInformationDiscriminator",
    "DiscriminatorTrainer",
    "DivergenceError",
    "MULTICLASS_REGISTRY",
    "MultiClassDiscriminator",
    "MultiClassTrainer",
    "make_multiclass",
]
