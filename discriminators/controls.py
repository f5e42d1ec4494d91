"""No-information discriminators: controls that score without looking at the sequence.

- :class:`ConstantDiscriminator` (``"constant"``): logit 0 (D = 1/2) for every sequence and
  every prefix. Every reward transform then gives the same reward to every sequence and every
  token, so an algorithm trained on it learns nothing from the discriminator. It keeps what the
  reward's form alone says, as a control should, since the learned discriminator's rewards carry
  it too: where per-token rewards are summed (dense rewards, discounting) a constant reward per
  token is a bonus (``prob``: +1/2) or a penalty (``log``: log 1/2) per token, so on data whose
  sequences end at ``<eos>`` it favours long or short sequences; and without a baseline a
  constant positive reward still moves the policy (toward its likelier sequences).
- :class:`RandomDiscriminator` (``"random"``): i.i.d. standard-normal logits, independent of
  the input; drawn from its own seeded CPU ``torch.Generator``, so the same seed gives the same
  sequence of logits and each call advances that generator (never the global RNG).

Both follow the :class:`~textgym.protocols.Discriminator` protocol the way the registry's
models do (``score (N, T), (N,) -> (N,)``, ``score_prefixes -> (N, T)``, ``is_probabilistic``
and ``supports_prefixes`` True, the same input checks), but they are NOT ``torch.nn.Module``
objects: they have no parameters and are never trained (an optimizer over no parameters is
refused by Adam, and the agents build a trainer for ``nn.Module`` discriminators only). Their
outputs are float32 on the device of the tokens; :meth:`to` moves nothing and returns the
object, so code that calls ``make(...).to(device)`` works unchanged.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch

from discriminators.base import check_inputs, check_sizes


class NoInformationDiscriminator:
    """The common part of the controls: input checks, the ``nn.Module``-like no-ops, shapes.

    Args:
        vocab_size: ``V``; ids lie in ``[0, V]`` (``V`` is the pad id).
        max_length: the longest ``T`` accepted.
    """

    is_probabilistic: bool = True
    supports_prefixes: bool = True
    #: never trained: always "eval mode" (there is no dropout to switch off)
    training: bool = False

    def __init__(self, vocab_size: int, max_length: int = 20) -> None:
        check_sizes(vocab_size, max_length)
        self.vocab_size = vocab_size
        self.max_length = max_length
        self.pad_id = vocab_size

    def check_inputs(self, tokens: torch.Tensor, lengths: Optional[torch.Tensor] = None):
        """The registry models' input checks (:func:`discriminators.base.check_inputs`), on the tokens' device."""
        return check_inputs(tokens, lengths, vocab_size=self.vocab_size, max_length=self.max_length)

    def logits(self, shape: tuple, device: torch.device) -> torch.Tensor:
        """``shape`` float32 logits on ``device`` (what the subclass scores everything with)."""
        raise NotImplementedError

    def score(self, tokens: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``(N, T)`` tokens, ``(N,)`` lengths or None -> ``(N,)`` logits (the input is only checked)."""
        tokens, _, _ = self.check_inputs(tokens, lengths)
        return self.logits((tokens.shape[0],), tokens.device)

    def score_prefixes(self, tokens: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``(N, T)`` tokens -> ``(N, T)`` logits of every prefix (the input is only checked)."""
        tokens, _, _ = self.check_inputs(tokens, lengths)
        return self.logits(tuple(tokens.shape), tokens.device)

    # the differentiable names of the registry models: the same values (nothing to differentiate)
    forward = score
    forward_prefixes = score_prefixes
    __call__ = score

    def regularization(self) -> torch.Tensor:
        """No parameters, no penalty: 0."""
        return torch.zeros(())

    def state_dict(self) -> Dict[str, Any]:
        """No state: ``{}`` (checkpoints can treat every discriminator alike)."""
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Accept only the empty state of :meth:`state_dict`; anything else raises RuntimeError
        (like a torch module given a state of another model)."""
        if state:
            raise RuntimeError(f"{type(self).__name__} is a fixed control without state; got keys {sorted(state)}")

    def to(self, *args: Any, **kwargs: Any) -> NoInformationDiscriminator:
        """Nothing to move (outputs follow the tokens' device): returns ``self``."""
        return self

    def train(self, mode: bool = True) -> NoInformationDiscriminator:
        """No training mode (no dropout, nothing to train): returns ``self`` unchanged."""
        return self

    def eval(self) -> NoInformationDiscriminator:
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size}, max_length={self.max_length})"


class ConstantDiscriminator(NoInformationDiscriminator):
    """Logit 0 (D(x) = 1/2) for every sequence and prefix: the no-information control.

    Args:
        vocab_size: ``V``.
        max_length: the longest ``T`` accepted.
    """

    def logits(self, shape: tuple, device: torch.device) -> torch.Tensor:
        return torch.zeros(shape, device=device)


class RandomDiscriminator(NoInformationDiscriminator):
    """I.i.d. N(0, 1) logits independent of the input: the random-reward control.

    The logits of a call depend only on the output's shape and on how many logits were drawn
    before: ``score`` draws N and ``score_prefixes`` N·T values (row-major) from the object's
    own CPU generator, which each call advances; the result is then moved to the tokens'
    device, so the values do not depend on it.

    Args:
        vocab_size: ``V``.
        max_length: the longest ``T`` accepted.
        seed: seeds the generator; None draws the seed from torch's global RNG (so a caller
            that seeds it, as the agents do around ``make``, gets a reproducible control).
    """

    def __init__(self, vocab_size: int, max_length: int = 20, *, seed: Optional[int] = None) -> None:
        super().__init__(vocab_size, max_length)
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)))
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"seed must be an int or None, got {seed!r}")
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def logits(self, shape: tuple, device: torch.device) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator).to(device)

    def reseed(self, seed: int) -> None:
        """Restart the sequence of logits from ``seed`` (an env's ``reset(seed=...)`` calls this,
        so that the same seed gives the same rewards)."""
        self.seed = int(seed)
        self.generator.manual_seed(self.seed)

    def state_dict(self) -> Dict[str, Any]:
        """The generator's state (to resume the same sequence of logits)."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; a state of another kind raises RuntimeError (like torch's)."""
        if set(state) != {"generator"}:
            raise RuntimeError(f"a RandomDiscriminator's state holds only 'generator', got keys {sorted(state)}")
        self.generator.set_state(state["generator"])

    def __repr__(self) -> str:
        return f"RandomDiscriminator(vocab_size={self.vocab_size}, max_length={self.max_length}, seed={self.seed})"
