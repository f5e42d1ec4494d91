"""Fast kernels for a softmax over a large output layer: sampling and log-likelihoods.

``torch.multinomial`` over 5000 classes is much slower on CPU than inverse-CDF sampling (one
uniform draw per row, located in the cumulative probabilities: :func:`inverse_cdf`), and
sampling dominates generation time when done naively. Every sampler in the project goes
through :func:`sample_logits` or :func:`sample_rows`. Data sets cached on disk record
:data:`SAMPLER_VERSION`: change it whenever a change here can change a draw.

Scoring (:func:`linear_log_softmax`) needs ``log Σ_v exp(logit_v)`` of every row: it is made
in cache-sized row chunks in base 2 (``exp2`` is cheaper than ``exp`` on CPU), with no max
shift where the logits are known to be bounded.

The timings behind these choices are in ``bench/results/NOTES.md``.
"""
from __future__ import annotations

import math
import threading
from typing import Iterator, Optional

import torch

from textgym.protocols import canonical_device

#: Bumped whenever a change here can change a draw for the same seed (4: base-2 probabilities
#: and the two-level search of :func:`inverse_cdf`).
SAMPLER_VERSION = 4

_LOG2E = 1.0 / math.log(2.0)


def check_temperature(temperature: float) -> None:
    """ValueError unless ``temperature`` is a number > 0 (NaN is refused too; +inf is the uniform
    distribution's limit and allowed)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")


def generator_on(generator: Optional[torch.Generator], device: torch.device) -> Optional[torch.Generator]:
    """``generator`` when it draws on ``device`` (or is None), else a generator on ``device``
    seeded by one draw of ``generator`` (so the draws still follow its seed and advance its state).

    torch refuses a CPU generator for draws on a CUDA tensor and the other way round; a rollout
    policy on another device than the env whose generator it is handed (an SB3 policy on CUDA
    completing the prefixes of a CPU env's MC reward) draws from this one. Devices compare with
    their index, "cuda" as the current one: torch refuses a ``cuda:0`` generator for ``cuda:1``.
    """
    if generator is None or canonical_device(generator.device) == canonical_device(device):
        return generator
    seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device))
    return torch.Generator(device).manual_seed(seed)


def row_chunk(n_cols: int, device: torch.device) -> Optional[int]:
    """Rows per chunk for row-wise work on ``(rows, n_cols)`` float tensors: the logits that
    :func:`sample_rows` and :func:`linear_log_softmax` make.

    On CPU, 256 rows at V = 5000 (a 5 MB tensor): chunks that stay in cache beat making all
    the logits at once, and of the sizes timed (64 to 1024 rows, in the scratch buffer of
    :func:`_logit_chunks`) 256 rows were the fastest for scoring and sampling alike. The
    chunking changes no draw and no score. None (no chunking) on accelerators, where fewer,
    larger kernels win.
    """
    if torch.device(device).type != "cpu":
        return None
    return max(16, 1_280_000 // max(1, n_cols))


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
            is below :func:`exp_safe_bound`, the probabilities are ``2^(logits · log2(e) / τ)``
            made in place with no max shift, faster on CPU than the softmax; ``logits``
            (a float32 tensor the caller no longer needs) is then overwritten. The synthetic
            oracle knows such a bound; models with unbounded hidden states must not pass one.

    Returns:
        ``(N,)`` int64 ids in ``[0, V)``; an id of probability 0 is never drawn.
    """
    check_temperature(temperature)
    if _unshifted(bound, temperature, logits.dtype, logits.shape[-1]):
        probs = logits.mul_(_LOG2E / temperature).exp2_()
    else:
        if temperature != 1.0:
            logits = logits / temperature
        # The fused softmax kernel: one pass over the row, faster on CPU than exp(logits - max) as separate ops.
        probs = torch.softmax(logits.float(), dim=-1)
    if u is None:
        u = torch.rand(logits.shape[0], 1, device=logits.device, generator=generator)
    return inverse_cdf(probs, u)


def _unshifted(bound: Optional[float], temperature: float, dtype: torch.dtype, n_cols: int) -> bool:
    """Whether ``n_cols`` logits bounded by ``bound`` (at temperature 1) may be exponentiated
    unshifted at ``temperature`` in ``dtype``."""
    return (bound is not None and dtype in (torch.float32, torch.float64)
            and bound / temperature < exp_safe_bound(n_cols))


#: Entries per block of :func:`inverse_cdf`'s two-level search (about sqrt(5000)).
CDF_BLOCK = 64


def flat_at_zeros(cum: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """``cum`` (N, K), the cumulative sums of entries of which ``positive`` says which are > 0,
    made exactly flat at the zero entries: each takes the largest value before it (0 before the
    first positive one). A parallel scan (CUDA's ``cumsum``) adds in another order at each
    position, so a zero entry can sit an ulp above its predecessor, and a search could then
    draw an id of probability 0; after this, ``searchsorted(..., right=True)`` never does."""
    return torch.where(positive, cum, torch.zeros_like(cum)).cummax(1).values


def inverse_cdf(probs: torch.Tensor, u: torch.Tensor, *, exact_scan: Optional[bool] = None) -> torch.Tensor:
    """The inverse-CDF draw of each row: the first id whose cumulative probability exceeds
    ``u · Σ probs``, found in two levels instead of one ``cumsum`` over all V entries.

    Args:
        probs: ``(N, V)`` unnormalized probabilities (finite, >= 0, each row's sum > 0).
        u: ``(N, 1)`` uniforms in [0, 1).
        exact_scan: whether ``cumsum`` adds sequentially (then it never steps at a zero entry
            and :func:`flat_at_zeros` is skipped); None: by device, True on the CPU only.

    Returns:
        ``(N,)`` int64 ids; never one of probability 0.

    The V entries are cut into blocks of :data:`CDF_BLOCK` (the last may be shorter). Level
    one: the cumulative block sums and the block k whose range holds the target. Level two:
    the target's fraction of block k's mass, located in the cumulative sum of that block's
    entries alone. ``torch.cumsum`` runs element by element along a row (on CPU each entry
    costs about as much as its ``exp``), while the block sums are vectorized, so the search
    costs O(V / B + B) sequential steps per row instead of O(V). The draws are those of the
    one-level search but for float rounding at a bin edge (about 1 draw in 4,000 at V = 5000).
    """
    N, V = probs.shape
    B = CDF_BLOCK
    nb, tail = divmod(V, B)
    sums = probs[:, : nb * B].unflatten(1, (nb, B)).sum(-1)
    if tail:
        sums = torch.cat([sums, probs[:, nb * B :].sum(1, keepdim=True)], 1)
    exact = probs.device.type == "cpu" if exact_scan is None else exact_scan  # sequential: x + 0 == x
    positive = None if exact else sums > 0
    cdf = sums.cumsum_(1)  # (N, blocks)
    if positive is not None:
        cdf = flat_at_zeros(cdf, positive)
    total = cdf[:, -1:]
    below = lambda x: torch.nextafter(x, torch.zeros_like(x))  # noqa: E731  (largest float < x)
    # Kept strictly below the total, the target lands in a block of positive mass.
    target = torch.minimum(u * total, below(total))
    k = torch.searchsorted(cdf, target, right=True)  # (N, 1)
    lo = torch.where(k > 0, cdf.gather(1, (k - 1).clamp_(min=0)), torch.zeros_like(target))
    cols = k * B + torch.arange(B, device=probs.device)  # (N, B): block k's ids
    inner = probs.gather(1, cols.clamp(max=V - 1))
    if tail:
        inner.masked_fill_(cols >= V, 0.0)
    positive = None if exact else inner > 0
    icdf = inner.cumsum_(1)
    if positive is not None:
        icdf = flat_at_zeros(icdf, positive)
    itotal = icdf[:, -1:]
    t = torch.minimum((target - lo) / (cdf.gather(1, k) - lo) * itotal, below(itotal))
    return (cols.gather(1, torch.searchsorted(icdf, t, right=True))).squeeze(1)


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
    check_temperature(temperature)  # before the bound's test, which a τ <= 0 passes (draws from softmax(-z/|τ|))
    n = h.shape[0]
    u = torch.rand(n, 1, device=h.device, generator=generator)
    ids = torch.empty(n, dtype=torch.long, device=h.device)
    with torch.no_grad():
        if _unshifted(bound, temperature, h.dtype, weight.shape[0]):
            for i, z in _logit_chunks(h, *_base2(weight, bias, temperature)):
                ids[i : i + z.shape[0]] = inverse_cdf(z.exp2_(), u[i : i + z.shape[0]])
        else:
            for i, z in _logit_chunks(h, weight, bias):
                ids[i : i + z.shape[0]] = sample_logits(z, temperature, u=u[i : i + z.shape[0]])
    return ids


def sample_past_prefix(
    tokens: torch.Tensor,
    t: int,
    h: torch.Tensor,
    prefix_lengths: torch.Tensor,
    max_prefix: int,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    temperature: float = 1.0,
    generator: Optional[torch.Generator] = None,
    bound: Optional[float] = None,
    all_rows: Optional[bool] = None,
) -> None:
    """One lock-step of a rollout: write column ``t`` of ``tokens`` (M, T) with :func:`sample_rows`
    draws from ``h`` (M, H) for the rows past their prefix (``prefix_lengths <= t``); the others
    keep their prefix token. ``max_prefix`` is ``prefix_lengths.max()``: from there on every row
    draws, with no search for the free rows; the draws are the same either way. Off the CPU
    every row always draws and the prefix rows' draws are dropped: the search for the free rows
    makes the host wait for the device at every step, and the extra draws are meant to cost less
    than those waits (not yet timed on a GPU). So the GPU's draws are not the CPU's; each is
    deterministic. ``all_rows`` chooses that way on any device (None: off the CPU)."""
    if t >= max_prefix:
        tokens[:, t] = sample_rows(h, weight, bias, temperature, generator, bound)
        return
    if all_rows or (all_rows is None and tokens.device.type != "cpu"):
        draws = sample_rows(h, weight, bias, temperature, generator, bound)
        tokens[:, t] = torch.where(prefix_lengths <= t, draws, tokens[:, t])
        return
    free = (prefix_lengths <= t).nonzero().squeeze(1)
    if free.numel():
        tokens[free, t] = sample_rows(h.index_select(0, free), weight, bias, temperature, generator, bound)


def _base2(weight: torch.Tensor, bias: Optional[torch.Tensor], temperature: float) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """The output layer scaled by log2(e)/τ, whose logits z' = z·log2(e)/τ give 2^z' = e^(z/τ)."""
    scale = _LOG2E / temperature
    return weight * scale, None if bias is None else bias * scale


_SCRATCH = threading.local()


def _logit_chunks(h: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(i, h[i : i + rows]·weightᵀ + bias)`` over the row chunks of :func:`row_chunk`.

    On CPU every chunk is written into one scratch buffer per thread and dtype, kept between
    calls and overwritten by the next chunk: use each chunk before asking for the next. A new
    tensor per chunk would cost page faults on first touch, about as long as the matrix
    product itself.
    """
    N, V = h.shape[0], weight.shape[0]
    step = row_chunk(V, h.device) or max(N, 1)
    rows = min(step, N)
    if h.device.type == "cpu":
        pool = _SCRATCH.__dict__.setdefault("buffers", {})
        buf = pool.get(h.dtype)
        if buf is None or buf.numel() < rows * V:
            buf = pool[h.dtype] = h.new_empty(rows * V)
        buf = buf[: rows * V].view(rows, V)
    else:
        buf = h.new_empty(rows, V)
    wt = weight.t()
    for i in range(0, N, step):
        hc = h[i : i + step]
        z = buf[: hc.shape[0]]
        if bias is None:
            torch.mm(hc, wt, out=z)
        else:
            torch.addmm(bias, hc, wt, out=z)
        yield i, z


def linear_log_softmax(
    h: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    targets: torch.Tensor,
    temperature: float = 1.0,
    *,
    bound: Optional[float] = None,
) -> torch.Tensor:
    """``log softmax((h·weightᵀ + bias) / temperature)[targets]`` row by row, without gradient.

    Args:
        h: ``(N, H)`` hidden states.
        weight: ``(V, H)`` (nn.Linear's layout); bias: ``(V,)`` or None.
        targets: ``(N,)`` int64 ids in ``[0, V)``.
        temperature: > 0.
        bound: a proven bound on ``|h·weightᵀ + bias|`` (at temperature 1), as for
            :func:`sample_logits`: under it the normalizer needs no max shift.

    Returns:
        ``(N,)`` float log-probabilities: ``z_y - log Σ_v exp(z_v)`` with ``z = (h·Wᵀ + b) / τ``.

    The normalizer is made from the logits in base 2 (weight and bias scaled by log2(e)/τ), in
    cache-sized row chunks (:func:`row_chunk`): ``log Σ_v 2^(z_v·log2 e) · ln 2``. On CPU
    ``exp2`` is cheaper than ``exp``, and without the shift (``bound`` given and small enough)
    each chunk is one matrix product, one in-place ``exp2`` and one sum: faster than
    ``torch.logsumexp`` of the same chunks and than torch's fused CPU flash-attention kernel
    used as a log-sum-exp, with or without the shift.
    Both paths agree with a float64 log-softmax to float32 rounding (tested).
    """
    check_temperature(temperature)
    N, V = h.shape[0], weight.shape[0]
    if N == 0:
        return h.new_zeros(0)
    with torch.no_grad():
        shift = not _unshifted(bound, temperature, h.dtype, V)
        lse = h.new_empty(N)
        for i, z in _logit_chunks(h, *_base2(weight, bias, temperature)):
            out = lse[i : i + z.shape[0]]
            if shift:
                m = z.amax(1, keepdim=True)
                torch.add(z.sub_(m).exp2_().sum(1).log2_(), m.squeeze(1), out=out)
            else:
                torch.log2(z.exp2_().sum(1), out=out)
        chosen = (h * weight[targets]).sum(1)
        if bias is not None:
            chosen += bias[targets]
        return chosen.div_(temperature) - lse.mul_(math.log(2.0))
