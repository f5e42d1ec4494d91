"""Fast categorical sampling.

``torch.multinomial`` over 5000 classes is about 25x slower on CPU than inverse-CDF sampling
(a ``cumsum`` and a ``searchsorted`` of one uniform draw per row), and sampling dominates
generation time when done naively. Every sampler in the project goes through this function.
Data sets cached on disk record :data:`SAMPLER_VERSION`: change it whenever a change here can
change a draw.
"""
from __future__ import annotations

from typing import Optional

import torch

#: Bumped whenever a change of :func:`sample_logits` can change its draws for the same seed.
SAMPLER_VERSION = 2


def row_chunk(n_cols: int, device: torch.device) -> Optional[int]:
    """Rows per chunk for row-wise work on ``(rows, n_cols)`` float tensors.

    On CPU, about 128 rows at V = 5000 (a 2.5 MB tensor, near the size of a core's L2 cache):
    scoring 256 oracle sequences in chunks of 128 rows was measured 2.2x faster than all at
    once, and 1024 rows 1.5x faster. None (no chunking) on accelerators, where fewer, larger
    kernels win.
    """
    if torch.device(device).type != "cpu":
        return None
    return max(16, 640_000 // max(1, n_cols))


def sample_logits(
    logits: torch.Tensor,
    temperature: float = 1.0,
    generator: Optional[torch.Generator] = None,
    u: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Draw one id per row from ``softmax(logits / temperature)``.

    Args:
        logits: ``(N, V)`` float.
        temperature: > 0; below 1 sharpens, above 1 flattens the distribution.
        generator: a ``torch.Generator`` on ``logits.device`` for reproducible draws.
        u: optional ``(N, 1)`` uniforms in [0, 1) drawn beforehand (then ``generator`` is not
            used): a caller that samples a batch in row chunks draws ``u`` for the whole batch
            once, so the draws do not depend on the chunk size.

    Returns:
        ``(N,)`` int64 ids in ``[0, V)``.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if temperature != 1.0:
        logits = logits / temperature
    # Inverse CDF: the fused softmax kernel (about 2x faster on CPU than exp(logits - max)
    # as separate ops), summed cumulatively; the uniform draw is scaled by the last value of
    # the CDF, so rounding in the sum cannot push the draw past it.
    cdf = torch.softmax(logits.float(), dim=-1).cumsum_(dim=-1)
    if u is None:
        u = torch.rand(logits.shape[0], 1, device=logits.device, generator=generator)
    u = u * cdf[:, -1:]
    ids = torch.searchsorted(cdf, u, right=True).squeeze(1)
    return ids.clamp_(max=logits.shape[-1] - 1)
