"""Length masks and padding of ``(N, T)`` token batches, in one place.

Conventions (see :mod:`textgym.data`): row i of a ``(N, T)`` batch holds ``lengths[i]`` tokens;
positions ``t >= lengths[i]`` are padding, filled with ``pad_id`` (the vocabulary size, never a
token). ``lengths`` may be None where every position is valid.
"""
from __future__ import annotations

from typing import Optional

import torch


def length_mask(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """``(N,)`` lengths -> ``(N, T)`` bool, True at the valid positions ``t < lengths[i]``.

    The mask lives on ``lengths.device``.
    """
    return torch.arange(T, device=lengths.device) < lengths[:, None]


def pad_after(tokens: torch.Tensor, lengths: Optional[torch.Tensor], pad_id: int) -> torch.Tensor:
    """``tokens`` ``(N, T)`` with every position ``t >= lengths[i]`` set to ``pad_id``: a new tensor.

    ``lengths`` None: ``tokens`` itself is returned (nothing is padding).
    """
    if lengths is None:
        return tokens
    return tokens.masked_fill(~length_mask(lengths.to(tokens.device), tokens.shape[1]), pad_id)


def strip_padding(tokens: torch.Tensor, lengths: Optional[torch.Tensor]) -> torch.Tensor:
    """``tokens`` ``(N, T)`` with the padding beyond ``lengths`` replaced by id 0.

    For a model that embeds every position and knows no pad id (the oracle, a generator): id 0
    is a valid token, so the row can be read; the outputs at the replaced positions mean
    nothing and must be masked (:func:`length_mask`). ``lengths`` None: ``tokens`` itself.
    """
    return pad_after(tokens, lengths, 0)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` ``(N, T)`` over the True entries of ``mask`` ``(N, T)`` (0 when there are none).

    The masked-out entries are selected away, not multiplied by 0: a ``-inf`` or NaN there (the
    log-probability of a forbidden token at a padded position) would make the product NaN.
    """
    return torch.where(mask, x, 0.0).sum() / mask.sum().clamp(min=1)
