"""Built-in scorers and the one place where any scorer is called.

:class:`OracleScorer` is the "perfect discriminator" of the synthetic benchmark: the oracle's
own log-likelihood. It wraps any :class:`~textgym.protocols.LikelihoodModel` (this module does
not import the oracle). It is a plain score (``is_probabilistic = False``), so transforms that
need a probability refuse it.

:func:`score` / :func:`score_prefixes` / :func:`score_completions` call a scorer the way
rewards must: in eval mode (no dropout), without gradient, on the scorer's device, and check
that the result is finite.
"""
from __future__ import annotations

from typing import Optional

import torch

from discriminators.base import capturing, eval_mode
from textgym.masks import length_mask, strip_padding
from textgym.protocols import Discriminator, LikelihoodModel, device_of


class OracleScorer:
    """Scores sequences by the oracle's log-likelihood (or that of any :class:`LikelihoodModel`).

    ``score(tokens (N, T), lengths (N,)) -> (N,)``: mean per-token ``log p_oracle`` over the
    valid positions. ``score_prefixes -> (N, T)``: ``log p_oracle(x_t | x_<t)`` of each token,
    so a dense reward's return is the sequence's total log-likelihood.
    """

    is_probabilistic = False
    supports_prefixes = True

    def __init__(self, oracle: LikelihoodModel) -> None:
        self.oracle = oracle
        self.vocab_size = oracle.vocab_size

    @property
    def device(self) -> Optional[torch.device]:
        """The device of the wrapped model's parameters; None for a model that has none."""
        return device_of(self.oracle)

    def score_prefixes(self, tokens: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.oracle.log_probs(strip_padding(tokens, lengths))

    def score(self, tokens: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        lp = self.score_prefixes(tokens, lengths)
        if lengths is None:
            return lp.mean(1)
        lengths = lengths.to(lp.device)
        mask = length_mask(lengths, lp.shape[1])
        return (lp * mask).sum(1) / lengths.clamp(min=1)

    __call__ = score

    def score_completions(self, tokens: torch.Tensor, lengths: Optional[torch.Tensor], prefix_lengths: torch.Tensor,
                          n: int) -> torch.Tensor:
        """``score(tokens, lengths)`` of M groups of n completions of a shared prefix, with the
        prefix scored once per group: (M·n, T), (M·n,), prefix_lengths (M,) -> (M·n,).

        log p(x) = log p(x_<p) + log p(x_≥p | x_<p): the first term is the same for the n rows of
        a group, so only ``T - p`` positions of each row need the output layer, not ``T``.
        """
        T = tokens.shape[1]
        if lengths is None:
            lengths = torch.full((tokens.shape[0],), T, dtype=torch.long, device=tokens.device)
        tokens = strip_padding(tokens, lengths)
        first = tokens[::n]
        # a prefix that holds the end of its sequence gives all n rows that same length
        head = self.oracle.log_probs(first, stop=torch.minimum(prefix_lengths, lengths[::n])).sum(1)
        tail = self.oracle.log_probs(tokens, start=prefix_lengths.repeat_interleave(n), stop=lengths).sum(1)
        return (head.repeat_interleave(n) + tail) / lengths.clamp(min=1)


def supports_prefixes(scorer: Discriminator) -> bool:
    """Whether ``scorer`` scores every prefix in one pass (needed by dense rewards)."""
    return bool(getattr(scorer, "supports_prefixes", hasattr(scorer, "score_prefixes")))


def _call(scorer: Discriminator, method: str, fallback: str, tokens: torch.Tensor,
          lengths: Optional[torch.Tensor]) -> torch.Tensor:
    device = device_of(scorer)
    if device is not None:
        tokens = tokens.to(device)
        lengths = None if lengths is None else lengths.to(device)
    # the scorer's own entry point, else its forward (modules and plain callables alike)
    fn = getattr(scorer, method, None) or getattr(scorer, fallback, None) or scorer
    with eval_mode(scorer):
        out = fn(tokens, lengths)
    return out.float()


def _checked(scorer: Discriminator, out: torch.Tensor, shape: tuple) -> torch.Tensor:
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"the scorer {type(scorer).__name__} returned shape {tuple(out.shape)}, expected {tuple(shape)}")
    if not capturing(out) and not torch.isfinite(out).all():  # a captured caller checks after replay
        bad = int((~torch.isfinite(out)).sum())
        raise ValueError(f"the scorer {type(scorer).__name__} returned {bad} non-finite scores; scores must be finite")
    return out


def score(scorer: Discriminator, tokens: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``(N, T)`` tokens -> ``(N,)`` scores (logits for probabilistic scorers), eval mode, no grad."""
    return _checked(scorer, _call(scorer, "score", "forward", tokens, lengths), (tokens.shape[0],))


def score_completions(scorer: Discriminator, tokens: torch.Tensor, lengths: Optional[torch.Tensor], prefix_lengths: torch.Tensor,
                      n: int) -> torch.Tensor:
    """Scores of M groups of n rows that share their first ``prefix_lengths[i]`` tokens (the
    Monte-Carlo reward's completions): (M·n, T), (M·n,), (M,) -> (M·n,), equal to
    ``score(scorer, tokens, lengths)``. A scorer with a ``score_completions`` method (such as
    :class:`OracleScorer`) scores each shared prefix once; any other is scored row by row.
    """
    M, T = prefix_lengths.shape[0], tokens.shape[1]
    if tokens.shape[0] != M * n:
        raise ValueError(f"{tokens.shape[0]} completions do not make {M} groups of {n}")
    if not hasattr(scorer, "score_completions"):
        return score(scorer, tokens, lengths)
    groups = tokens.reshape(M, n, T)
    in_prefix = length_mask(prefix_lengths.to(tokens.device), T)
    if not capturing(tokens) and not ((groups == groups[:, :1]) | ~in_prefix[:, None]).all():
        raise ValueError("the completions of a group do not share their prefix")
    device = device_of(scorer) or tokens.device
    with eval_mode(scorer):
        out = scorer.score_completions(tokens.to(device), None if lengths is None else lengths.to(device),
                                       prefix_lengths.to(device), n).float()
    return _checked(scorer, out, (tokens.shape[0],))


def score_prefixes(scorer: Discriminator, tokens: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``(N, T)`` tokens -> ``(N, T)`` per-prefix scores, eval mode, no grad."""
    return _checked(scorer, _call(scorer, "score_prefixes", "forward_prefixes", tokens, lengths), tuple(tokens.shape))
