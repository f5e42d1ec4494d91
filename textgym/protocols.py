"""The small protocols that keep ``discriminators``, ``textgym`` and ``agents`` apart.

``textgym`` never imports ``agents`` or a concrete discriminator, and its generic machinery
never imports the concrete oracle (:mod:`textgym.oracle`): rewards consume any object that
follows :class:`Discriminator`, the Monte-Carlo reward any :class:`RolloutPolicy`, the metrics
any :class:`SequenceModel`, and :class:`textgym.scorers.OracleScorer` any
:class:`LikelihoodModel`. The synthetic oracle implements all of these roles.
"""
from __future__ import annotations

from typing import Any, Optional, Protocol, Union, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class Discriminator(Protocol):
    """Scores token sequences.

    ``forward(tokens (N, T) int64, lengths (N,) int64 | None) -> (N,)`` float: logits of
    P(real) when ``is_probabilistic`` is True, otherwise a plain score (higher = more real).
    Optional: ``score_prefixes(tokens, lengths) -> (N, T)``: the score of every prefix
    ``tokens[:, :t+1]`` (needed by dense rewards); ``features(tokens, lengths) -> (N, F)``;
    ``score_completions(tokens (M·n, T), lengths, prefix_lengths (M,), n) -> (M·n,)``: the same
    scores as ``score`` for M groups of n rows that share a prefix, used by the Monte-Carlo
    reward to score each shared prefix once (the oracle's log-likelihood has one).
    """

    vocab_size: int
    is_probabilistic: bool

    def __call__(self, tokens: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor: ...


@runtime_checkable
class RolloutPolicy(Protocol):
    """Completes prefixes: the Monte-Carlo (SeqGAN) reward's rollout policy.

    ``rollout(tokens (M, T) int64, prefix_lengths (M,) int64) -> (M, T) int64``: row i keeps
    its first ``prefix_lengths[i]`` tokens and samples the rest. n rollouts of a prefix are the
    row repeated n times.
    """

    def rollout(
        self,
        tokens: torch.Tensor,
        prefix_lengths: torch.Tensor,
        *,
        temperature: float = 1.0,
        generator: Optional[torch.Generator] = None,
    ) -> torch.Tensor: ...


@runtime_checkable
class SequenceModel(Protocol):
    """A generative model of token sequences that metrics can sample from and score.

    ``sample(n, *, temperature, generator) -> (n, T) int64`` and
    ``log_probs(tokens (N, T) int64) -> (N, T)`` float: log p(x_t | x_<t) of each token
    (teacher forcing). ``vocab_size`` and ``max_length`` describe the sequences.
    """

    vocab_size: int
    max_length: int

    def sample(
        self, n: int, *, temperature: float = 1.0, generator: Optional[torch.Generator] = None
    ) -> torch.Tensor: ...

    def log_probs(self, tokens: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class LikelihoodModel(Protocol):
    """A model that scores token sequences by teacher-forced log-likelihood, in position windows.

    ``log_probs(tokens (N, T) int64, temperature, start (N,) | None, stop (N,) | None) -> (N, T)``
    float: ``log p(x_t | x_<t)`` at positions ``start[i] <= t < stop[i]`` of row i (all of them
    when both are None) and 0 elsewhere. Every id in ``[0, vocab_size)`` is a valid input;
    padding must be replaced by a valid id first (:func:`textgym.masks.strip_padding`).
    """

    vocab_size: int

    def log_probs(
        self, tokens: torch.Tensor, temperature: float = 1.0,
        start: Optional[torch.Tensor] = None, stop: Optional[torch.Tensor] = None,
    ) -> torch.Tensor: ...


@runtime_checkable
class Trainable(Protocol):
    """An object with torch's training and evaluation modes (``nn.Module`` and the generators):
    what scorers and metrics switch to eval mode while they score, and back."""

    @property
    def training(self) -> bool: ...

    def train(self, mode: bool = True) -> Any: ...

    def eval(self) -> Any: ...


def device_of(obj: object, default: Optional[torch.device] = None) -> Optional[torch.device]:
    """Where ``obj`` computes: its ``device`` attribute when that is a torch.device, else the
    device of its first parameter; ``default`` for an object with neither (a fixed scorer)."""
    d = getattr(obj, "device", None)
    if isinstance(d, torch.device):
        return d
    parameters = getattr(obj, "parameters", None)
    p = next(iter(parameters()), None) if callable(parameters) else None
    return default if p is None else p.device


def is_int(v: Any) -> bool:
    """An integer (Python or numpy), not a bool."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def canonical_device(device: Union[str, torch.device]) -> torch.device:
    """``torch.device`` with the current index filled in for an indexless CUDA device, so that
    "cuda" and "cuda:0" compare equal where the current device is 0 (and "cuda:1" does not)."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def usable_device(device: Union[str, torch.device]) -> torch.device:
    """``torch.device(device)``, or ValueError saying why this machine cannot compute there: not a
    device name, or a CUDA (MPS) device where torch has none (torch itself would fail later, at the
    first tensor moved there, with an AssertionError from deep inside)."""
    try:
        d = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device {str(device)!r} is not a torch device ({str(exc).splitlines()[0]}); "
                         "use cpu, cuda or cuda:N") from None
    if d.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r}: torch finds no CUDA device here (torch.cuda.is_available() is "
                             "False: a CPU-only torch build, or no GPU); use cpu")
        if d.index is not None and d.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(device)!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                             f"numbered from 0")
    elif d.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {str(device)!r}: torch finds no MPS device here; use cpu")
    return d
