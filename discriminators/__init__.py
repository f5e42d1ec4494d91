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

Registry names: ``cnn`` (:class:`CNNDiscriminator`), ``rnn`` (:class:`RNNDiscriminator`).
"""
from __future__ import annotations

import inspect
from typing import Dict, List, Type

from discriminators.base import BaseDiscriminator, DivergenceError
from discriminators.cnn import CNNDiscriminator
from discriminators.rnn import RNNDiscriminator
from discriminators.trainer import DiscriminatorTrainer

#: name -> class; ``make`` resolves names here (the CLI and the env kwargs go through it).
REGISTRY: Dict[str, Type[BaseDiscriminator]] = {
    "cnn": CNNDiscriminator,
    "rnn": RNNDiscriminator,
}


def available() -> List[str]:
    """The registered discriminator names, sorted."""
    return sorted(REGISTRY)


def make(name: str, vocab_size: int, **options: object) -> BaseDiscriminator:
    """Build a registered discriminator.

    Args:
        name: a key of :data:`REGISTRY` (``"cnn"``, ``"rnn"``).
        vocab_size: ``V``; the pad id is ``V``.
        **options: keyword options of the class (``max_length``, ``size``, ``hidden`` ...).

    Raises:
        ValueError: an unknown name (listing the valid ones) or an unknown option (listing
            the accepted ones).
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown discriminator {name!r}; valid names: {available()}")
    cls = REGISTRY[name]
    params = inspect.signature(cls.__init__).parameters
    accepted = [p for p in params if p not in ("self", "vocab_size")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for discriminator {name!r}; accepted options: {accepted}")
    return cls(vocab_size, **options)  # type: ignore[arg-type]


__all__ = [
    "REGISTRY",
    "available",
    "make",
    "BaseDiscriminator",
    "CNNDiscriminator",
    "RNNDiscriminator",
    "DiscriminatorTrainer",
    "DivergenceError",
]
