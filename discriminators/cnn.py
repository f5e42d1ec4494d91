"""SeqGAN's CNN discriminator (Yu et al. 2017, after Kim 2014 and Zhang & LeCun 2015).

    e_t   = Emb(x_t)                                     (N, T, E), pad rows are zero
    c^w_j = ReLU(W_w · [e_j; …; e_{j+w-1}] + b_w)         one Conv over time per window width w
    p^w   = max_j c^w_j   over windows inside the sequence (invalid windows masked to -inf)
    x     = [p^{w_1}; …; p^{w_K}]                         (N, F), F = Σ filters
    g     = σ(W_g x + b_g),  y = g ⊙ ReLU(W_h x + b_h) + (1 - g) ⊙ x      highway
    logit = w_o · dropout(y) + b_o                         one logit of P(real)

Defaults are the original code's (``discriminator.py`` of LantaoYu/SeqGAN): embedding 64,
widths [1..10, 15, 20] with [100, 200, 200, 200, 200, 100, 100, 100, 100, 100, 160, 160]
filters (F = 1720), dropout 0.25 (keep probability 0.75), uniform(-1, 1) embeddings, conv and
output weights from a truncated normal of std 0.1 (cut at ±2 std, as TensorFlow's) and their
biases 0.1, highway gate bias 0. The original has a two-class softmax output; one logit is the
same model with one fewer redundant row. The highway's weights (and its transform bias) keep
PyTorch's default initialization (the original: TensorFlow's default for ``get_variable``).

Regularization: like the original, the trainer adds ``l2_reg · (‖W_o‖² + ‖b_o‖²) / 2`` of the
output layer to the loss (:meth:`CNNDiscriminator.regularization`). The original's
``l2_reg_lambda`` is 0.2 on its two rows; with one logit the weights are their difference
d = w_1 - w_0, and two rows ±d/2 (the least-norm pair, where the penalty drives the redundant
sum w_0 + w_1) carry ‖d‖²/2, so the original's λ = 0.2 on two rows is ``l2_reg = 0.1`` here,
the default.

Windows and lengths: a window starting at position j of width w is valid when
``j + w <= lengths[i]``. A sequence shorter than a width has no such window; for it the window
at j = 0 (which then covers the sequence and zero padding embeddings) is used, so every width
gives a finite feature. Inputs shorter than the widest window are padded on the right.

This model has no per-prefix scores: ``supports_prefixes`` is False and it has no
``score_prefixes`` attribute, so dense rewards refuse it with a clear message. The Monte-Carlo
reward's completions are scored in full: with lookup tables (below), pooling a window again
costs less than the bookkeeping that would share the windows of a group's common prefix
(bench/results/NOTES.md).

Scoring on the CPU: the convolution of a window is a sum of products of single tokens'
embeddings with slices of the filter, and a token's embedding is a lookup, so a scoring batch
of many windows reads each window's outputs from per-width tables of those products (w
additions per filter instead of w·E multiply-adds, :meth:`CNNDiscriminator._tables`); a small
batch forms them by one matrix product per window position (:meth:`CNNDiscriminator._max_windows`).
Training keeps the convolution there. Off the CPU, batches of up to ``ONE_CONV_MAX_ROWS`` rows (the
trainer's minibatches) pool every width with one matrix product of unfolded windows
(:meth:`CNNDiscriminator._pool_all`).
"""
from __future__ import annotations

import contextlib
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, TypedDict, cast

import torch
import torch.nn.functional as F
from torch import nn

from discriminators.base import BaseDiscriminator


class Preset(TypedDict):
    """A size preset: the embedding size, the window widths with their filter counts, the dropout."""

    emb_dim: int
    widths: Tuple[int, ...]
    filters: Tuple[int, ...]
    dropout: float


#: Size presets. ``seqgan`` is the original discriminator; ``small`` is for tests and quick runs.
SIZES: Dict[str, Preset] = {
    "seqgan": {
        "emb_dim": 64,
        "widths": (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20),
        "filters": (100, 200, 200, 200, 200, 100, 100, 100, 100, 100, 160, 160),
        "dropout": 0.25,
    },
    "small": {
        "emb_dim": 32,
        "widths": (1, 2, 3, 4, 5),
        "filters": (32, 32, 32, 32, 32),
        "dropout": 0.25,
    },
}


#: Precisions of the CNN's scoring. ``bfloat16`` runs the window products (where they are not
#: read from float32 lookup tables, :meth:`CNNDiscriminator._tables`) and the highway's two
#: products of :meth:`CNNDiscriminator.score` in bfloat16 (the
#: highway's gated sum and the output layer stay float32): the rewards, and also the held-out
#: evaluation, which scores through ``score``. Training stays float32 unless its trainer says
#: otherwise (``DiscriminatorTrainer(precision=...)``). It pays on a CPU with native bfloat16
#: (AVX512-BF16, AMX) or a GPU, and costs on a CPU without (speed and distance from float32:
#: ``bench/mc_rollout.py --scorer cnn``, README).
#: The test holds single completions' D(Y) = σ(logit) to 1e-2 of float32's and lets a decision
#: (the logit's sign) change only within 0.05 of 0 (tests/test_discriminators.py).
SCORE_DTYPES = ("float32", "bfloat16")

#: the most rows that the CNN pools with one window product off the CPU (:meth:`CNNDiscriminator._pool_all`):
#: its extra arithmetic grows with the rows, the launches it saves do not, so large scoring
#: batches (the MC reward's thousands of completions) keep one convolution per width
ONE_CONV_MAX_ROWS = 1024

#: a width's lookup table (:meth:`CNNDiscriminator._tables`) is built for a scoring call that
#: pools at least this many of its windows per table row
LOOKUP_MIN_WINDOWS = 3

#: the most memory the lookup tables of one scoring call take (all of SeqGAN's CNN's tables at
#: V = 5000 take 250 MB)
LOOKUP_MAX_BYTES = 256 * 2**20

#: about how many windows' filter outputs one block of :meth:`CNNDiscriminator._max_lookup` forms
#: before taking their maximum (a block's (rows, windows, f) outputs stay in the cache)
LOOKUP_WINDOWS = 4096


def _masked_max(c: torch.Tensor, ok: Optional[torch.Tensor]) -> torch.Tensor:
    """The maximum over the last axis of ``c`` (N, f, windows) among the windows where ``ok``
    (broadcast to c; None: all) is True, -inf where none is: -> (N, f).

    With a gradient (training) the mask is added, so that its backward passes the gradient
    through untouched. In float32 the maximum is then taken with its index, whose backward puts
    each (row, filter)'s gradient on one window; amax's backward spreads it over tied windows in
    several passes over (N, f, windows). The parameters' gradients are the same: float32 windows
    tie (in practice) only when they hold the same tokens (repeated n-grams), and then the filter's
    and the embeddings' gradients do not depend on which of them gets it (tested against a
    per-window reference). In bfloat16 (mixed-precision training) different windows also tie when
    their outputs round to the same value, and the indexed maximum would always pick the earliest,
    so there ``amax`` splits the gradient as before. Without a gradient the mask is filled in
    place and ``amax`` taken.
    """
    if not torch.is_grad_enabled():
        return (c if ok is None else c.masked_fill_(~ok, float("-inf"))).amax(dim=2)
    if ok is not None:
        c = c + torch.zeros(ok.shape, dtype=c.dtype, device=c.device).masked_fill_(~ok, float("-inf"))
    return c.max(dim=2).values if c.dtype in (torch.float32, torch.float64) else c.amax(dim=2)


@contextlib.contextmanager
def _products_as_convolutions() -> Iterator[None]:
    """Float32 matrix products on CUDA may use TF32 exactly when cuDNN's convolutions may
    (``torch.backends.cudnn.allow_tf32``, on in torch's defaults; off in the tests)."""
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


class _ConvolutionProduct(torch.autograd.Function):
    """``windows @ weightᵀ + bias`` whose three products (forward, and the two of the backward)
    run under :func:`_products_as_convolutions`."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, windows: torch.Tensor, weight: torch.Tensor,
                bias: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(windows, weight)
        with _products_as_convolutions():
            return torch.addmm(bias, windows, weight.t())

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor
                 ) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor], Optional[torch.Tensor]]:
        windows, weight = ctx.saved_tensors  # type: ignore[attr-defined]
        need = ctx.needs_input_grad  # type: ignore[attr-defined]
        with _products_as_convolutions():
            g_windows = grad @ weight if need[0] else None
            g_weight = grad.t() @ windows if need[1] else None
        return g_windows, g_weight, grad.sum(0) if need[2] else None


def _window_product(windows: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """(M, K) windows @ (K, F) filters + bias -> (M, F): a convolution written as a matrix
    product, in a convolution's precision. cuDNN's float32 convolutions may use TF32 by torch's
    default, float32 matrix products may not; the product follows the convolutions' setting,
    so that replacing the convolution by it changes the arithmetic's speed, not its precision.
    Under autocast (bfloat16) or off CUDA the setting does not arise: a plain ``F.linear``."""
    if windows.device.type != "cuda" or windows.dtype != torch.float32 \
            or torch.backends.cudnn.allow_tf32 == torch.backends.cuda.matmul.allow_tf32:
        return F.linear(windows, weight, bias)
    return cast(torch.Tensor, _ConvolutionProduct.apply(windows, weight, bias))


class Highway(nn.Module):
    """One highway layer (Srivastava et al. 2015): ``y = g*relu(W_h x) + (1-g)*x``, ``g = σ(W_g x + b_g)``.

    Args:
        dim: feature size ``F`` of ``x`` ``(N, F)``.
        gate_bias: initial bias of the gate (the original SeqGAN code uses 0).
    """

    def __init__(self, dim: int, gate_bias: float = 0.0) -> None:
        super().__init__()
        self.transform = nn.Linear(dim, dim)
        self.gate = nn.Linear(dim, dim)
        nn.init.constant_(self.gate.bias, gate_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``y = x + g ⊙ (relu(W_h x) - x)``, the same sum with one product fewer. Under autocast
        the products run in bfloat16 and the gated sum in the weights' dtype; without a
        gradient (scoring) the sum is formed in place, which saves allocating (N, F) tensors."""
        wide = x.to(self.gate.weight.dtype)
        if torch.is_grad_enabled():
            g = torch.sigmoid(self.gate(x)).to(wide.dtype)
            t = F.relu(self.transform(x)).to(wide.dtype) - wide
        else:
            g = self.gate(x).to(wide.dtype).sigmoid_()
            t = self.transform(x).to(wide.dtype).relu_().sub_(wide)
        return torch.addcmul(wide, g, t)


class CNNDiscriminator(BaseDiscriminator):
    """SeqGAN's CNN discriminator (see the module docstring for the update of each layer).

    Args:
        vocab_size: ``V``; the embedding has ``V + 1`` rows, the last (pad id ``V``) zero.
        max_length: longest ``T`` accepted (20 in the SeqGAN benchmark).
        size: preset, ``"seqgan"`` (the original, default) or ``"small"``.
        emb_dim, widths, filters, dropout: override the preset; ``widths`` and ``filters`` are
            sequences of the same length (one Conv over time per width); ``widths`` given
            alone get the preset's filters if the counts match, else its first count each.
        highway: whether to apply the highway layer (True in SeqGAN).
        l2_reg: λ of the L2 penalty on the output layer, :meth:`regularization` (0.1: SeqGAN's 0.2 on
            its two output rows).
        score_dtype: ``"float32"`` (default, exact) or ``"bfloat16"``: the precision of
            :meth:`score` (rewards, held-out evaluation), never
            of training. See :data:`SCORE_DTYPES`.

    ``forward(tokens (N, T), lengths (N,) | None) -> (N,)`` logits; ``features -> (N, Σ filters)``.
    """

    supports_prefixes = False
    filter_widths: torch.Tensor  # (F,) each filter's window width, a buffer
    graph_capturable = True  # encode and head make no host sync off the CPU (discriminators.graphed)

    def __init__(
        self,
        vocab_size: int,
        max_length: int = 20,
        *,
        size: str = "seqgan",
        emb_dim: Optional[int] = None,
        widths: Optional[Sequence[int]] = None,
        filters: Optional[Sequence[int]] = None,
        dropout: Optional[float] = None,
        highway: bool = True,
        l2_reg: float = 0.1,
        score_dtype: str = "float32",
    ) -> None:
        super().__init__(vocab_size, max_length)
        if score_dtype not in SCORE_DTYPES:
            raise ValueError(f"score_dtype must be one of {list(SCORE_DTYPES)}, got {score_dtype!r}")
        self.score_dtype = score_dtype
        if size not in SIZES:
            raise ValueError(f"unknown size {size!r}; valid sizes: {sorted(SIZES)}")
        preset = SIZES[size]
        emb_dim = int(preset["emb_dim"] if emb_dim is None else emb_dim)
        widths = tuple(int(w) for w in (preset["widths"] if widths is None else widths))
        if filters is None:
            filters = preset["filters"] if len(widths) == len(preset["widths"]) else (preset["filters"][0],) * len(widths)
        filters = tuple(int(f) for f in filters)
        dropout = float(preset["dropout"] if dropout is None else dropout)
        if not widths or len(widths) != len(filters):
            raise ValueError(
                f"widths and filters must be non-empty and of equal length, got {len(widths)} widths and {len(filters)} filters"
            )
        if min(widths) < 1 or min(filters) < 1:
            raise ValueError(f"widths and filters must be >= 1, got widths {widths} and filters {filters}")
        if emb_dim < 1:
            raise ValueError(f"emb_dim must be >= 1, got {emb_dim}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        l2_reg = float(l2_reg)
        if not l2_reg >= 0.0:  # also refuses NaN
            raise ValueError(f"l2_reg must be >= 0, got {l2_reg}")
        self.l2_reg = l2_reg
        self.emb_dim, self.widths, self.filters, self.dropout_p = emb_dim, widths, filters, dropout
        self.feature_dim = sum(filters)

        self.embedding = nn.Embedding(vocab_size + 1, emb_dim, padding_idx=vocab_size)
        self.convs = nn.ModuleList(nn.Conv1d(emb_dim, f, kernel_size=w) for w, f in zip(widths, filters, strict=True))
        self.highway = Highway(self.feature_dim) if highway else None
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(self.feature_dim, 1)
        # each filter's width, for pooling all widths at once (one_conv); not part of the state
        self.register_buffer("filter_widths", torch.repeat_interleave(torch.tensor(widths), torch.tensor(filters)),
                             persistent=False)
        #: pool all widths with one window product: None = off the CPU, for minibatches of at most
        #: ONE_CONV_MAX_ROWS rows (see :meth:`_pool_all`)
        self.one_conv: Optional[bool] = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The original initialization: U(-1, 1) embeddings, truncated N(0, 0.1) weights, 0.1 biases."""
        with torch.no_grad():
            nn.init.uniform_(self.embedding.weight, -1.0, 1.0)
            self.embedding.weight[self.pad_id].zero_()
            for module in self.convs:
                conv = cast(nn.Conv1d, module)  # ModuleList yields plain Modules to a type checker
                nn.init.trunc_normal_(conv.weight, std=0.1, a=-0.2, b=0.2)
                if conv.bias is not None:  # always: the convolutions are built with biases
                    nn.init.constant_(conv.bias, 0.1)
            nn.init.trunc_normal_(self.out.weight, std=0.1, a=-0.2, b=0.2)
            nn.init.constant_(self.out.bias, 0.1)

    def encode(self, tokens: torch.Tensor, lengths: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``(N, T)`` checked tokens -> ``(N, Σ filters)`` highway features (max-over-time pooled)."""
        ids = self._pad(tokens)
        if self.one_conv or (self.one_conv is None and ids.device.type != "cpu" and ids.shape[0] <= ONE_CONV_MAX_ROWS):
            x = self._pool_all(self._embed(ids), lengths)
        else:
            tables = self._tables(ids)
            e = self._embed(ids) if any(t is None for t in tables) else None  # the widths without a table pool these
            pairs = zip(self.widths, self.convs, tables, strict=True)
            x = torch.cat([self._pool(ids if t is not None else cast(torch.Tensor, e), lengths, conv, w, table=t)
                           for w, conv, t in pairs], 1)
        return self.highway(x) if self.highway is not None else x

    def _pool_all(self, e: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The pooled features of every width from one matrix product: e (N, E, width) -> (N, F).

        Each width's filters are zero-padded on the right to the widest width W, and ``e`` by
        W - 1 zero columns, so that every filter has a window at every position j: the
        (N·width, E·W) windows (``unfold``) times the (E·W, F) filters are the convolution at
        every position. Windows past a sequence's end are masked as in :meth:`_pool`, then one
        max over time. The same function as the per-width pooling (tested to 1e-5), with about
        6 times its arithmetic (SeqGAN's sizes) in a few kernels instead of well over a hundred:
        a trade for a GPU, where a small update's time is its kernel count, not its arithmetic.
        A matrix product rather than a convolution because the backward to the embeddings is
        then a matrix product too; cuDNN's data-gradient kernel for this shape was the update's
        slowest (bench/results/gpu-h200). The product keeps a convolution's precision
        (:func:`_window_product`).
        """
        W = max(self.widths)
        pairs = [(w, cast(nn.Conv1d, conv)) for w, conv in zip(self.widths, self.convs, strict=True)]
        weight = torch.cat([F.pad(conv.weight, (0, W - w)) for w, conv in pairs])  # (F, E, W)
        bias = torch.cat([cast(torch.Tensor, conv.bias) for _, conv in pairs])
        N, E, width = e.shape
        windows = F.pad(e, (0, W - 1)).unfold(2, W, 1).transpose(1, 2).reshape(N * width, E * W)  # [e·W + k]
        c = _window_product(windows, weight.reshape(weight.shape[0], E * W), bias).view(N, width, -1).transpose(1, 2)
        j = torch.arange(width, device=e.device)
        ok = (j[None, None, :] + self.filter_widths[None, :, None] <= lengths[:, None, None]) | (j == 0)[None, None, :]
        return F.relu(_masked_max(c, ok))

    def _pad(self, tokens: torch.Tensor) -> torch.Tensor:
        """(N, T) ids -> (N, width) ids, padded on the right to the widest window."""
        width = max(tokens.shape[1], max(self.widths))
        return F.pad(tokens, (0, width - tokens.shape[1]), value=self.pad_id) if width > tokens.shape[1] else tokens

    def _embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """(N, T) ids -> (N, E, width) embeddings, padded on the right to the widest window."""
        e = self.embedding(self._pad(tokens))
        if torch.is_autocast_enabled(e.device.type):  # bfloat16 scoring: cast once, not once per width
            e = e.to(torch.get_autocast_dtype(e.device.type))
        return e.transpose(1, 2)

    def _pool(self, e: torch.Tensor, lengths: torch.Tensor, conv: nn.Module, w: int,
              table: Optional[torch.Tensor] = None) -> torch.Tensor:
        """max_j ReLU(conv)_j over the valid windows j: e (N, E, width) -> (N, f). With ``table``
        (this width's of :meth:`_tables`), ``e`` is the padded ids (N, width) instead.

        The maximum comes from the lookup table when given (:meth:`_max_lookup`), from matrix
        products when scoring on the CPU (:meth:`_max_windows`), from the convolution otherwise
        (:meth:`_max_conv`). The ReLU comes after the max (they commute): it touches (N, f)
        values instead of (N, f, windows)."""
        if table is not None:
            return F.relu(self._max_lookup(e, lengths, table, cast(nn.Conv1d, conv), w))
        pool = self._max_windows if e.device.type == "cpu" and not torch.is_grad_enabled() else self._max_conv
        return F.relu(pool(e, lengths, cast(nn.Conv1d, conv), w))

    def _max_conv(self, e: torch.Tensor, lengths: torch.Tensor, conv: nn.Conv1d, w: int) -> torch.Tensor:
        """:meth:`_pool`'s maximum before the ReLU from the convolution: e (N, E, width) -> (N, f).

        On the CPU the convolution runs as a 2-D one over (N, E, 1, width) in channels-last
        layout, which is the embeddings' own (N, width, E) layout, so oneDNN reads them in place
        and uses its channels-last kernels: the same function, faster in bfloat16 training and
        as fast in float32 (bench/results/NOTES.md)."""
        if e.device.type == "cpu":
            x = e.unsqueeze(2).contiguous(memory_format=torch.channels_last)  # no copy when e comes from _embed
            c = F.conv2d(x, conv.weight.unsqueeze(2), conv.bias).squeeze(2)  # (N, f, windows)
        else:
            c = conv(e)  # (N, f, windows)
        j = torch.arange(c.shape[2], device=e.device)
        ok = (j[None, :] + w <= lengths[:, None]) | (j[None, :] == 0)
        # full-length rows (the oracle's) skip the mask on the CPU; elsewhere asking would wait for
        # the device (a sync per width and forward), and the mask is cheaper than the wait
        return _masked_max(c, ok[:, None, :] if e.device.type != "cpu" or not bool(ok.all()) else None)

    def _max_windows(self, e: torch.Tensor, lengths: torch.Tensor, conv: nn.Conv1d, w: int) -> torch.Tensor:
        """:meth:`_pool`'s maximum before the ReLU, as one matrix product per window position:
        e (N, E, width) -> (N, f).

        With the embeddings laid out as rows ``x = e.transpose(1, 2)`` (N, width·E), the window
        at j is the column slice ``x[:, jE : (j+w)E]``, a strided view that the matrix product
        reads in place, and its outputs are ``x[:, jE : (j+w)E] · W_w`` with ``W_w`` (w·E, f) the
        filters laid out the same way; a running maximum over j keeps (N, f) values. This avoids
        the convolution's (N, f, windows) output and the reduction over its short last axis.
        Used for scoring on the CPU (no gradient); training keeps the convolution, whose backward
        is one kernel per width.
        """
        x = e.transpose(1, 2).contiguous()  # (N, width, E): already contiguous when e comes from _embed
        N, width, E = x.shape
        rows = x.view(N, width * E)
        weight = conv.weight.to(x.dtype).permute(0, 2, 1).reshape(conv.out_channels, w * E).t()  # (wE, f)
        # window j qualifies for a row when j <= last: it ends by the row's length (the first
        # window always counts)
        last = (lengths - w).clamp(min=0)
        lo, hi = int(last.min()), int(last.max())
        m = x.new_full((N, weight.shape[1]), float("-inf"))
        for j in range(min(width - w, hi) + 1):
            y = torch.mm(rows[:, j * E : (j + w) * E], weight)
            if j > lo:  # some rows have no such window
                y.masked_fill_((last < j)[:, None], float("-inf"))
            torch.maximum(m, y, out=m)
        return m + conv.bias.to(m.dtype) if conv.bias is not None else m

    def _tables(self, ids: torch.Tensor) -> List[Optional[torch.Tensor]]:
        """Per width w, every token's filter outputs at every offset of a window,
        ``table_w[v·w + k] = W_w[:, :, k] · Emb(v)`` ((V+1)·w, f), where it pays: when scoring on
        the CPU a batch ``ids`` (N, width) that has at least :data:`LOOKUP_MIN_WINDOWS` times as
        many windows of that width as the table has rows. Else None. The tables take at most
        :data:`LOOKUP_MAX_BYTES` in all, so that a large vocabulary cannot make them outgrow
        the memory of a scoring call; the narrowest widths, with the most windows per row, get
        theirs first.

        Since a token's embedding is a lookup, so is each of its products with a filter: a
        window's output is a sum of w table rows, ``W_w · [e_j; …; e_{j+w-1}] = Σ_k
        table_w[x_{j+k}·w + k]`` (:meth:`_max_lookup`), w additions per filter instead of w·E
        multiply-adds. The same function as the convolution up to float rounding (tested to
        1e-5). Building a table is one (V+1, E)·(E, w·f) product, as many multiply-adds as V+1
        windows, and writes (V+1)·w·f values: it pays for batches of many more windows than
        that (the MC reward's thousands of completions, held-out evaluation), not for a
        minibatch. The tables are float32 (float64 for float64 weights) also under bfloat16
        scoring, whose distance from float32 then comes from the highway and the widths pooled by
        products only (bfloat16 tables did not pay: bench/results/NOTES.md). They are built again at
        every scoring call, never kept, so that they cannot go stale when the weights change.
        """
        N, width = ids.shape
        tables: List[Optional[torch.Tensor]] = [None] * len(self.convs)
        if ids.device.type != "cpu" or torch.is_grad_enabled():
            return tables
        dtype = torch.promote_types(self.embedding.weight.dtype, torch.float32)  # float64 weights stay so
        weight = self.embedding.weight.to(dtype)
        budget = LOOKUP_MAX_BYTES // (weight.shape[0] * weight.element_size())  # the tables' columns
        for k in sorted(range(len(self.convs)), key=lambda k: self.widths[k]):  # the most windows per row first
            w, f, conv = self.widths[k], self.filters[k], cast(nn.Conv1d, self.convs[k])
            if N * (width - w + 1) < LOOKUP_MIN_WINDOWS * weight.shape[0] or w * f > budget:
                break
            budget -= w * f
            with torch.autocast("cpu", enabled=False):  # float32 also under bfloat16 scoring
                tables[k] = torch.mm(weight, conv.weight.to(dtype).permute(1, 2, 0).reshape(weight.shape[1], -1)).view(-1, f)
        return tables

    def _max_lookup(self, ids: torch.Tensor, lengths: torch.Tensor, table: torch.Tensor, conv: nn.Conv1d,
                    w: int) -> torch.Tensor:
        """:meth:`_pool`'s maximum before the ReLU from this width's lookup table (:meth:`_tables`):
        ids (N, width) -> (N, f) in the table's dtype.

        Window j of a row is the bag of table rows ``x_{j+k}·w + k``, k < w, summed by
        ``F.embedding_bag`` (no (windows, w, f) gather is formed); blocks of rows keep a block's
        (rows, windows, f) outputs near :data:`LOOKUP_WINDOWS` windows, small enough to stay in
        the cache for the maximum over windows.
        """
        N, width = ids.shape
        last = (lengths - w).clamp(min=0)  # window j qualifies for a row when j <= last (see _max_windows)
        stop = min(width - w, int(last.max()))
        m = table.new_empty((N, table.shape[1]))
        j = torch.arange(stop + 1, device=ids.device)
        masked = int(last.min()) < stop
        offsets = torch.arange(w, device=ids.device)
        step = max(1, LOOKUP_WINDOWS // len(j))
        for s in range(0, N, step):
            bags = ids[s : s + step, : stop + w].unfold(1, w, 1) * w + offsets  # (rows, windows, w)
            y = F.embedding_bag(bags.reshape(-1, w), table, mode="sum").view(bags.shape[0], len(j), -1)
            if masked:
                y.masked_fill_((j[None, :] > last[s : s + step, None])[:, :, None], float("-inf"))
            torch.amax(y, 1, out=m[s : s + step])
        return m + cast(torch.Tensor, conv.bias).to(m.dtype) if conv.bias is not None else m

    def head(self, features: torch.Tensor) -> torch.Tensor:
        # the output layer (one dot product per row) in the weights' dtype, also in bfloat16 scoring
        with torch.autocast(features.device.type, enabled=False):
            return self.out(self.dropout(features.to(self.out.weight.dtype))).squeeze(-1)

    @contextlib.contextmanager
    def scoring(self) -> Iterator[None]:
        """Eval mode and no gradient (as every discriminator's), and with ``score_dtype``
        ``"bfloat16"`` autocast to bfloat16 (see :data:`SCORE_DTYPES` for what stays float32;
        the logits come back as float32)."""
        bf16 = self.score_dtype == "bfloat16"
        with super().scoring(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
            yield

    def regularization(self) -> torch.Tensor:
        """SeqGAN's penalty on the output layer only: ``l2_reg · (‖W_o‖² + ‖b_o‖²) / 2``.

        The original adds ``l2_reg_lambda · (l2_loss(W) + l2_loss(b))`` of its output layer,
        with ``tf.nn.l2_loss(x) = Σ x² / 2``, to the mean cross-entropy. A scalar tensor,
        differentiable; the trainer adds it to the loss of each update.
        """
        return self.l2_reg * 0.5 * (self.out.weight.pow(2).sum() + self.out.bias.pow(2).sum())

    def extra_repr(self) -> str:
        return (
            f"vocab_size={self.vocab_size}, max_length={self.max_length}, emb_dim={self.emb_dim}, "
            f"widths={list(self.widths)}, filters={list(self.filters)}, dropout={self.dropout_p}, l2_reg={self.l2_reg}, "
            f"score_dtype={self.score_dtype}"
        )
