"""Built-in scorers and the one place where any scorer is called.

:class:`OracleScorer` is the "perfect discriminator" of the synthetic benchmark: the oracle's
own log-likelihood. It is a plain score (``is_probabilistic = False``), so transforms that need
a probability refuse it.

:func:`score` / :func:`score_prefixes` call a scorer the way rewards must: in eval mode
(no dropout), without gradient, on the scorer's device, and check that the result is finite.
"""
from __future__ import annotations

from typing import Any, Optional

import torch

from textgym.oracle import OracleLSTM, _strip


class OracleScorer:
    """Scores sequences by the oracle's log-likelihood.

    ``score(tokens (N, T), lengths (N,)) -> (N,)``: mean per-token ``log p_oracle`` over the
    valid positions. ``score_prefixes -> (N, T)``: ``log p_oracle(x_t | x_<t)`` of each token,
    so a dense reward's return is the sequence's total log-likelihood.
    """

    is_probabilistic = False
    supports_prefixes = True

    def __init__(self, oracle: OracleLSTM) -> None:
        self.oracle = oracle
        self.vocab_size = oracle.vocab_size

    def score_prefixes(self, tokens: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.oracle.log_probs(_strip(tokens, lengths, self.vocab_size))

    def score(self, tokens: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        lp = self.score_prefixes(tokens, lengths)
        if lengths is None:
            return lp.mean(1)
        lengths = lengths.to(lp.device)
        mask = torch.arange(lp.shape[1], device=lp.device) < lengths[:, None]
        return (lp * mask).sum(1) / lengths.clamp(min=1)

    __call__ = score


def supports_prefixes(scorer: Any) -> bool:
    """Whether ``scorer`` scores every prefix in one pass (needed by dense rewards)."""
    return bool(getattr(scorer, "supports_prefixes", hasattr(scorer, "score_prefixes")))


def _device_of(scorer: Any) -> Optional[torch.device]:
    if isinstance(scorer, torch.nn.Module):
        p = next(scorer.parameters(), None)
        return None if p is None else p.device
    if isinstance(scorer, OracleScorer):
        return scorer.oracle.Wo.device
    return None


def _call(scorer: Any, method: str, fallback: str, tokens: torch.Tensor, lengths: Optional[torch.Tensor]) -> torch.Tensor:
    device = _device_of(scorer)
    if device is not None:
        tokens = tokens.to(device)
        lengths = None if lengths is None else lengths.to(device)
    fn = getattr(scorer, method, None)
    if fn is not None:  # the scorer's own eval-mode, no-grad entry point
        with torch.no_grad():
            out = fn(tokens, lengths)
    else:
        was_training = getattr(scorer, "training", False)
        if was_training:
            scorer.eval()
        try:
            with torch.no_grad():
                # modules and plain callables (the protocol's ``__call__``) alike
                out = (getattr(scorer, fallback, None) or scorer)(tokens, lengths)
        finally:
            if was_training:
                scorer.train()
    out = out.float()
    if not torch.isfinite(out).all():
        bad = int((~torch.isfinite(out)).sum())
        raise ValueError(f"the scorer {type(scorer).__name__} returned {bad} non-finite scores; scores must be finite")
    return out


def score(scorer: Any, tokens: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``(N, T)`` tokens -> ``(N,)`` scores (logits for probabilistic scorers), eval mode, no grad."""
    out = _call(scorer, "score", "forward", tokens, lengths)
    if out.shape != (tokens.shape[0],):
        raise ValueError(f"scorer returned shape {tuple(out.shape)}, expected ({tokens.shape[0]},)")
    return out


def score_prefixes(scorer: Any, tokens: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``(N, T)`` tokens -> ``(N, T)`` per-prefix scores, eval mode, no grad."""
    out = _call(scorer, "score_prefixes", "forward_prefixes", tokens, lengths)
    if out.shape != tuple(tokens.shape):
        raise ValueError(f"scorer returned prefix scores of shape {tuple(out.shape)}, expected {tuple(tokens.shape)}")
    return out
