"""Fast kernels for a softmax over a large output layer: sampling and log-likelihoods.

``torch.multinomial`` over 5000 classes is about 25x slower on CPU than inverse-CDF sampling
(a ``cumsum`` and a ``searchsorted`` of one uniform draw per row), and sampling dominates
generation time when done naively. Every sampler in the project goes through this function.
Data sets cached on disk record :data:`SAMPLER_VERSION`: change it whenever a change here can
change a draw.

Scoring (:func:`linear_log_softmax`) needs ``log Σ_v exp(logit_v)`` of every row. Made the
obvious way (the logits, then a log-softmax) it writes and reads a ``(rows, V)`` tensor; on CPU
it is instead computed by the fused flash-attention kernel, which never materializes it.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

#: Bumped whenever a change of :func:`sample_logits` can change its draws for the same seed.
SAMPLER_VERSION = 3


def row_chunk(n_cols: int, device: torch.device) -> Optional[int]:
    """Rows per chunk for row-wise work on ``(rows, n_cols)`` float tensors: the logits that
    :func:`sample_rows` and the fallback of :func:`linear_log_softmax` make.

    On CPU, about 128 rows at V = 5000 (a 2.5 MB tensor, near the size of a core's L2 cache):
    logits + log-softmax of 256 oracle sequences in chunks of 128 rows were measured 2.2x
    faster than all at once, and 1024 rows 1.5x faster. None (no chunking) on accelerators,
    where fewer, larger kernels win.
    """
    if torch.device(device).type != "cpu":
        return None
    return max(16, 640_000 // max(1, n_cols))


def exp_safe_bound(n_cols: int) -> float:
    """A bound B such that for float32 logits with |x| <= B, ``exp(x)`` and its sum over
    ``n_cols`` entries are finite normal numbers: e^B · n_cols stays 8 nats below the float32
    maximum (e^88.7), and e^-B above the smallest normal float (e^-87.3)."""
    return 80.0 - math.log(max(1, n_cols))


def sample_logits(
    logits: torch.Tensor,
    temperature: float = 1.0,
    generator: Optional[torch.Generator] = None,
    u: Optional[torch.Tensor] = None,
    *,
    bound: Optional[float] = None,
) -> torch.Tensor:
    """Draw one id per row from ``softmax(logits / temperature)``.

    Args:
        logits: ``(N, V)`` float.
        temperature: > 0; below 1 sharpens, above 1 flattens the distribution.
        generator: a ``torch.Generator`` on ``logits.device`` for reproducible draws.
        u: optional ``(N, 1)`` uniforms in [0, 1) drawn beforehand (then ``generator`` is not
            used): a caller that samples a batch in row chunks draws ``u`` for the whole batch
            once, so the draws do not depend on the chunk size.
        bound: a proven bound on ``|logits|`` (at temperature 1). When ``bound / temperature``
            is below :func:`exp_safe_bound`, the CDF is ``exp(logits)`` summed in place with no
            max shift, about 2x faster on CPU than the softmax; ``logits`` (a float32 tensor
            the caller no longer needs) is then overwritten. The synthetic oracle knows such a
            bound; models with unbounded hidden states must not pass one.

    Returns:
        ``(N,)`` int64 ids in ``[0, V)``.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if bound is not None and logits.dtype == torch.float32 and bound / temperature < exp_safe_bound(logits.shape[-1]):
        cdf = (logits if temperature == 1.0 else logits.div_(temperature)).exp_().cumsum_(dim=-1)
    else:
        if temperature != 1.0:
            logits = logits / temperature
        # The fused softmax kernel: about 2x faster on CPU than exp(logits - max) as separate ops.
        cdf = torch.softmax(logits.float(), dim=-1).cumsum_(dim=-1)
    # Inverse CDF: the uniform draw is scaled by the last value of the (possibly unnormalized)
    # CDF, so rounding in the sum cannot push the draw past it.
    if u is None:
        u = torch.rand(logits.shape[0], 1, device=logits.device, generator=generator)
    u = u * cdf[:, -1:]
    ids = torch.searchsorted(cdf, u, right=True).squeeze(1)
    return ids.clamp_(max=logits.shape[-1] - 1)


def linear_logit_bound(weight: torch.Tensor, bias: Optional[torch.Tensor] = None) -> float:
    """``max_v Σ_j |weight[v, j]| + |bias[v]|``: a bound on ``|h·weightᵀ + bias|`` for every
    hidden state with ``|h_j| <= 1``, such as an LSTM's output o · tanh(c)."""
    total = weight.detach().abs().sum(1)
    if bias is not None:
        total = total + bias.detach().abs()
    return float(total.max())


def sample_rows(
    h: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    temperature: float = 1.0,
    generator: Optional[torch.Generator] = None,
    bound: Optional[float] = None,
) -> torch.Tensor:
    """Project hidden states to logits and draw one id per row: ``(N, H) -> (N,)`` int64.

    The logits ``h·weightᵀ + bias`` (``weight`` is ``(V, H)``, nn.Linear's layout) are made and
    sampled in cache-sized row chunks (:func:`row_chunk`) with one uniform per row drawn for
    the whole batch first, so the draws do not depend on the chunking. ``bound``: a bound on
    ``|logits|`` (:func:`linear_logit_bound` when ``|h| <= 1``), see :func:`sample_logits`.
    """
    n = h.shape[0]
    u = torch.rand(n, 1, device=h.device, generator=generator)
    step = row_chunk(weight.shape[0], h.device) or max(n, 1)
    return torch.cat([
        sample_logits(F.linear(h[i : i + step], weight, bias), temperature, u=u[i : i + step], bound=bound)
        for i in range(0, n, step)
    ])


_FLASH_CHECKED: Optional[bool] = None  # None: not yet compared with a float64 log-sum-exp


def _flash_lse(op, h: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
               temperature: float) -> Optional[torch.Tensor]:
    (N, H), V = h.shape, weight.shape[0]
    k = weight.detach().contiguous().view(1, 1, V, H)
    mask = None if bias is None else (bias.detach() / temperature).view(1, 1, 1, V).expand(1, 1, N, V)
    try:
        lse = op(h.contiguous().view(1, 1, N, H), k, k, 0.0, False, attn_mask=mask, scale=1.0 / temperature)[1]
    except (RuntimeError, NotImplementedError, TypeError):  # a build, signature or shape the kernel refuses
        return None
    return lse.reshape(N) if lse.numel() == N else None


def _flash_log_normalizer(h: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                          temperature: float) -> Optional[torch.Tensor]:
    """``log Σ_v exp((h_i·weight_v + bias_v) / τ)`` for rows h (N, H), from the CPU flash-attention
    kernel: queries h, keys weight, the bias as an additive mask broadcast over the rows, and
    its log-sum-exp output (the values, the keys again, are unused: a contiguous tensor is 2x
    faster there than expanded zeros). The kernel walks the keys in blocks with an online max,
    so the (N, V) logits never reach memory. None where this torch build lacks the kernel or
    where, on first use, it disagrees with a float64 log-sum-exp (it is a private op)."""
    global _FLASH_CHECKED
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is None:
        return None
    if _FLASH_CHECKED is None:
        g = torch.Generator().manual_seed(0)
        hp, wp, bp = torch.randn(8, 16, generator=g), torch.randn(300, 16, generator=g), torch.randn(300, generator=g)
        got = _flash_lse(op, hp, wp, bp, 0.7)
        want = torch.logsumexp((hp.double() @ wp.double().t() + bp.double()) / 0.7, 1)
        _FLASH_CHECKED = got is not None and bool(torch.allclose(got.double(), want, rtol=0, atol=1e-4))
    return _flash_lse(op, h, weight, bias, temperature) if _FLASH_CHECKED else None


def linear_log_softmax(
    h: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    targets: torch.Tensor,
    temperature: float = 1.0,
) -> torch.Tensor:
    """``log softmax((h·weightᵀ + bias) / temperature)[targets]`` row by row, without gradient.

    Args:
        h: ``(N, H)`` hidden states.
        weight: ``(V, H)`` (nn.Linear's layout); bias: ``(V,)`` or None.
        targets: ``(N,)`` int64 ids in ``[0, V)``.
        temperature: > 0.

    Returns:
        ``(N,)`` float log-probabilities: ``z_y - log Σ_v exp(z_v)`` with ``z = (h·Wᵀ + b) / τ``.

    On CPU with float32 the normalizer comes from the fused flash-attention kernel
    (:func:`_flash_log_normalizer`), which in the env's terminal oracle reward (256 × 20 rows,
    V = 5000, 2 cores) was measured 1.7x faster than the logits made in cache-sized row chunks
    followed by the fused cross-entropy, in interleaved rounds. Elsewhere, or where that kernel
    is missing, it is the latter. The two agree to float32 rounding (tested).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    N = h.shape[0]
    if N == 0:
        return h.new_zeros(0)
    with torch.no_grad():
        if h.device.type == "cpu" and h.dtype == torch.float32 and weight.dtype == torch.float32:
            lse = _flash_log_normalizer(h, weight, bias, temperature)
            if lse is not None:
                chosen = (h * weight[targets]).sum(1)
                if bias is not None:
                    chosen += bias[targets]
                return chosen.div_(temperature) - lse
        step = row_chunk(weight.shape[0], h.device) or N
        out = []
        for i in range(0, N, step):
            logits = F.linear(h[i : i + step], weight, bias)
            if temperature != 1.0:
                logits = logits.div_(temperature)
            out.append(-F.cross_entropy(logits, targets[i : i + step], reduction="none"))
        return torch.cat(out)
