"""Held-out evaluation of any discriminator, and the accuracy rule shared with its training.

:func:`evaluate` scores real and generated sequences in eval mode, without gradient, updates or
draws from any RNG of torch's; :func:`correct` is the one definition of a right call (a logit of
exactly 0 counts one half, so the ``constant`` control is at chance), which the trainer's
statistics use too; :func:`correct_class` is its multi-class form, :func:`rank_accuracy` the
accuracy of a relativistic discriminator, which compares a real and a fake sequence's logits.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from discriminators.base import eval_mode


def correct(logits: torch.Tensor, is_real: torch.Tensor) -> torch.Tensor:
    """1 for a right call (real with logit > 0, fake with logit < 0), 0 for a wrong one and 1/2
    for a logit of exactly 0, which calls neither class: a discriminator that always answers 0
    (the ``constant`` control) is at chance, 1/2 on each class. Same shape as ``logits``."""
    right = torch.where(is_real, logits > 0, logits < 0).float()
    return right + 0.5 * (logits == 0).float()


def correct_class(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The multi-class :func:`correct`: ``logits`` (N, C), ``targets`` (N,) -> (N,) float, 1 when
    the target's logit is the only largest, 1/m when it ties with m - 1 others for the largest
    and 0 otherwise: a discriminator with equal logits (the ``constant`` control) is right 1/C
    of the time on every class, as a uniform guess is."""
    top = logits.max(dim=1, keepdim=True).values
    ties = (logits == top).sum(1).float()
    return (logits.gather(1, targets[:, None]).squeeze(1) == top.squeeze(1)).float() / ties


def rank_accuracy(real: torch.Tensor, fake: torch.Tensor) -> float:
    """P(s_real > s_fake) + P(s_real = s_fake) / 2 over every (real, fake) pair of the 1-D score
    tensors: the accuracy of a relativistic discriminator, which calls the real one of a pair the
    one with the larger logit whatever their sign (the area under the ROC curve; 0.5 at chance).
    Exact, by binary search of each real score among the sorted fake scores."""
    if real.numel() == 0 or fake.numel() == 0:
        raise ValueError(f"rank_accuracy needs real and fake scores, got {real.numel()} and {fake.numel()}")
    f = fake.detach().double().flatten().sort().values
    r = real.detach().double().flatten()
    below = torch.searchsorted(f, r, side="left").double()
    at_most = torch.searchsorted(f, r, side="right").double()
    return float((below + at_most).sum() / 2) / (r.numel() * f.numel())


def logit_stats(real: torch.Tensor, fake: torch.Tensor) -> Dict[str, Any]:
    """Real-vs-fake figures of 1-D logits of P(real): ``loss`` (binary cross-entropy against the
    labels 1/0, the mean of the real and the fake rows' means), ``acc_real`` / ``acc_fake`` (see
    :func:`correct`), ``balanced_acc`` = (acc_real + acc_fake) / 2, ``n_real``, ``n_fake``."""
    if real.numel() == 0 or fake.numel() == 0:
        raise ValueError(f"logit_stats needs real and fake logits, got {real.numel()} and {fake.numel()}")
    real, fake = real.detach().float().flatten(), fake.detach().float().flatten()
    loss = 0.5 * (float(F.binary_cross_entropy_with_logits(real, torch.ones_like(real)))
                  + float(F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))))
    acc_real = float(correct(real, torch.ones_like(real, dtype=torch.bool)).mean())
    acc_fake = float(correct(fake, torch.zeros_like(fake, dtype=torch.bool)).mean())
    return {"loss": loss, "acc_real": acc_real, "acc_fake": acc_fake, "balanced_acc": 0.5 * (acc_real + acc_fake),
            "n_real": real.numel(), "n_fake": fake.numel()}


def right_calls(logits: torch.Tensor, is_real: torch.Tensor) -> torch.Tensor:
    """(2,): the :func:`correct` calls summed over the real rows and over the fake rows."""
    ok = correct(logits, is_real)
    return torch.stack([(ok * is_real).sum(), (ok * ~is_real).sum()])


def balanced_by_position(right: torch.Tensor, seen: torch.Tensor) -> List[float]:
    """``right``, ``seen``: (2, T) sums for (real, fake) at each position -> per-position balanced
    accuracy (NaN where a class has no row)."""
    out = []
    for t in range(right.shape[1]):
        if float(seen[0, t]) == 0 or float(seen[1, t]) == 0:
            out.append(math.nan)
        else:
            out.append(0.5 * (float(right[0, t]) / float(seen[0, t]) + float(right[1, t]) / float(seen[1, t])))
    return out


def per_position_sums(right: torch.Tensor, valid: torch.Tensor, is_real: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(N, T) right calls and validity, (N,) classes -> (2, T) sums of right calls and of valid rows."""
    v = valid.float()
    real = is_real.float()[:, None]
    r = torch.stack([(right * v * real).sum(0), (right * v * (1 - real)).sum(0)])
    s = torch.stack([(v * real).sum(0), (v * (1 - real)).sum(0)])
    return r, s


def _device_of(discriminator: Any) -> Optional[torch.device]:
    if isinstance(discriminator, nn.Module):
        p = next(discriminator.parameters(), None)
        return None if p is None else p.device
    return None


@torch.no_grad()
def _scores(discriminator: Any, tokens: torch.Tensor, lengths: torch.Tensor, prefixes: bool) -> torch.Tensor:
    """Eval-mode, no-grad scores: (N, T) per prefix if ``prefixes`` else (N,), float32."""
    # a plain callable of the Discriminator protocol when it has no ``score``
    fn = getattr(discriminator, "score_prefixes") if prefixes else getattr(discriminator, "score", discriminator)  # noqa: B009
    with eval_mode(discriminator):
        return fn(tokens, lengths).float()


def evaluate(
    discriminator: Any,
    real_tokens: torch.Tensor,
    real_lengths: Optional[torch.Tensor],
    fake_tokens: torch.Tensor,
    fake_lengths: Optional[torch.Tensor],
    *,
    batch_size: int = 1024,
) -> Dict[str, Any]:
    """Held-out evaluation of any discriminator: eval mode, no gradient, nothing updated.

    Scores the sequences with ``score`` (``score_prefixes`` for per-prefix discriminators) in
    chunks of ``batch_size`` rows; draws from no RNG of torch's (a ``random`` control draws
    from its own generator, as each of its calls does).

    Args:
        discriminator: a registry discriminator, a control, or any object with ``score``.
        real_tokens, fake_tokens: ``(N, T)`` int64 (pad id ``V`` past the lengths).
        real_lengths, fake_lengths: ``(N,)`` int64 or None (all positions valid).
        batch_size: rows scored at once.

    Returns:
        dict: :func:`logit_stats` of the whole sequences' logits (``loss``, ``acc_real``,
        ``acc_fake``, ``balanced_acc``, ``n_real``, ``n_fake``) and, for a discriminator with
        per-prefix scores,
        ``acc_by_position``: the balanced accuracy of the prefix logit at each position t over
        the rows with t < length (NaN where a class has no such row).
    """
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    prefixes = bool(getattr(discriminator, "supports_prefixes", False)) and hasattr(discriminator, "score_prefixes")
    device = _device_of(discriminator)
    finals: List[List[torch.Tensor]] = [[], []]  # each side's whole-sequence logits
    pos_right: Optional[torch.Tensor] = None
    pos_seen: Optional[torch.Tensor] = None
    for c, (side, tokens, lengths) in enumerate((("real", real_tokens, real_lengths), ("fake", fake_tokens, fake_lengths))):
        tokens = torch.as_tensor(tokens)
        if tokens.dim() != 2 or tokens.shape[0] == 0:
            raise ValueError(f"{side}_tokens must be a non-empty (N, T) tensor, got shape {tuple(tokens.shape)}")
        N, T = tokens.shape
        lengths = torch.full((N,), T, dtype=torch.long) if lengths is None else torch.as_tensor(lengths)
        if tuple(lengths.shape) != (N,):
            raise ValueError(f"{side}_lengths must have shape ({N},), got {tuple(lengths.shape)}")
        if device is not None:
            tokens, lengths = tokens.to(device), lengths.to(device)
        for start in range(0, N, int(batch_size)):
            tok, ln = tokens[start : start + batch_size], lengths[start : start + batch_size].long()
            is_real = torch.full((tok.shape[0],), c == 0, dtype=torch.bool)
            try:
                s = _scores(discriminator, tok, ln, prefixes)
            except ValueError as exc:
                raise ValueError(f"{side} sequences: {exc}") from exc
            is_real = is_real.to(s.device)
            ln = ln.to(s.device)
            if prefixes:
                valid = torch.arange(s.shape[1], device=s.device)[None, :] < ln[:, None]
                r, n = per_position_sums(correct(s, is_real[:, None].expand_as(s)), valid, is_real)
                width = max(T, 0 if pos_right is None else pos_right.shape[1])
                r, n = F.pad(r.cpu(), (0, width - r.shape[1])), F.pad(n.cpu(), (0, width - n.shape[1]))
                if pos_right is None or pos_seen is None:
                    pos_right, pos_seen = r, n
                else:
                    pos_right = F.pad(pos_right, (0, width - pos_right.shape[1])) + r
                    pos_seen = F.pad(pos_seen, (0, width - pos_seen.shape[1])) + n
                s = s.gather(1, (ln - 1)[:, None]).squeeze(1)
            finals[c].append(s)
    out: Dict[str, Any] = logit_stats(torch.cat(finals[0]), torch.cat(finals[1]))
    if pos_right is not None and pos_seen is not None:
        out["acc_by_position"] = balanced_by_position(pos_right, pos_seen)
    return out
