"""The synthetic oracle of SeqGAN: a fixed random LSTM that defines the "real" data.

The exact oracle of the original experiments (vocab 5000, embedding 32, hidden 32) is loaded
from ``oracle_lstm/target_params.npz`` in the data directory (:func:`textgym.paths.data_dir`;
where the weights come from is told in the ``SOURCE.md`` beside that file). Semantics, row-vector
convention, with x the embedding of the previous token (token 0 at the first step):

    i = σ(x·Wi + h·Ui + bi)     f = σ(x·Wf + h·Uf + bf)     o = σ(x·Wog + h·Uog + bog)
    c̃ = tanh(x·Wc + h·Uc + bc)  c = f*c_prev + i*c̃          h = o*tanh(c)
    logits = h·Wo + bo,          h0 = c0 = 0

Every one of the 5000 ids is a valid output. The oracle samples (with a temperature,
seeded), scores per-token log-likelihoods, completes prefixes (the
:class:`~textgym.protocols.RolloutPolicy` protocol) and is the "perfect discriminator"
through :class:`textgym.scorers.OracleScorer`.
"""
from __future__ import annotations

import os
import sys
import warnings
import zipfile
import zlib
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from textgym.masks import length_mask, strip_padding
from textgym.paths import data_dir, data_path
from textgym.sampling import generator_on, linear_log_softmax, linear_logit_bound, sample_past_prefix

ORACLE_KEYS = (
    "00_g_embeddings", "01_Wi", "02_Ui", "03_bi", "04_Wf", "05_Uf", "06_bf",
    "07_Wog", "08_Uog", "09_bog", "10_Wc", "11_Uc", "12_bc", "13_Wo", "14_bo",
)
START_TOKEN = 0


class OracleLSTM(nn.Module):
    """SeqGAN's target LSTM.

    Args:
        vocab_size: number of token ids (5000 for the published oracle).
        emb_dim, hidden_dim: 32 and 32 for the published oracle.
        max_length: sequence length of samples (20 in the standard protocol).
        seed: seed of the N(0, 1) initialization used when no weights are loaded.
    """

    #: Rows × positions per piece of :meth:`log_probs`: bounds its hidden states (2.6 MB) and, on
    #: accelerators, where the logits are not made in row chunks, its logits (20,480 × V floats).
    LOG_PROB_ROWS = 20_480

    def __init__(
        self,
        vocab_size: int = 5000,
        emb_dim: int = 32,
        hidden_dim: int = 32,
        max_length: int = 20,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.emb_dim = emb_dim
        self.hidden_dim = hidden_dim
        self.max_length = max_length
        g = torch.Generator().manual_seed(seed)

        def p(*shape: int) -> nn.Parameter:
            return nn.Parameter(torch.randn(*shape, generator=g), requires_grad=False)

        self.embedding = p(vocab_size, emb_dim)
        # Gates stacked in the order i, f, o, c̃: x·W (E, 4H) and h·U (H, 4H).
        self.W = p(emb_dim, 4 * hidden_dim)
        self.U = p(hidden_dim, 4 * hidden_dim)
        self.b = p(4 * hidden_dim)
        self.Wo = p(vocab_size, hidden_dim)  # stored as (V, H), nn.Linear layout: logits = F.linear(h, Wo, bo)
        self.bo = p(vocab_size)
        self.source = f"freshly initialized (seed {seed})"

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_npz(cls, path: Union[str, os.PathLike], max_length: int = 20) -> OracleLSTM:
        """Load the oracle from an ``.npz`` with the 15 arrays ``00_g_embeddings`` … ``14_bo``."""
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"oracle file {path!r} does not exist")
        try:
            arrays = np.load(path, allow_pickle=False)
        except Exception as exc:  # zipfile/pickle/format errors
            raise ValueError(f"oracle file {path!r} is not a readable .npz archive: {exc}") from exc
        with arrays:
            missing = [k for k in ORACLE_KEYS if k not in arrays.files]
            if missing:
                raise ValueError(
                    f"oracle file {path!r} lacks arrays {missing}; expected the 15 arrays {list(ORACLE_KEYS)}"
                )
            try:  # an object array cannot be read without unpickling, which allow_pickle=False refuses
                a = {k: np.asarray(arrays[k], dtype=np.float32) for k in ORACLE_KEYS}
            except (ValueError, TypeError) as exc:
                raise ValueError(f"oracle file {path!r} holds an array that is not numeric: {exc}") from None
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:  # a damaged member (CRC, deflate)
                raise ValueError(f"oracle file {path!r} is damaged: {exc}") from None
        V, E = a["00_g_embeddings"].shape if a["00_g_embeddings"].ndim == 2 else (0, 0)
        H = a["02_Ui"].shape[0] if a["02_Ui"].ndim == 2 else 0
        expected = {
            "00_g_embeddings": (V, E), "13_Wo": (H, V), "14_bo": (V,),
            **{k: (E, H) for k in ("01_Wi", "04_Wf", "07_Wog", "10_Wc")},
            **{k: (H, H) for k in ("02_Ui", "05_Uf", "08_Uog", "11_Uc")},
            **{k: (H,) for k in ("03_bi", "06_bf", "09_bog", "12_bc")},
        }
        for k, shape in expected.items():
            if V == 0 or H == 0 or a[k].shape != shape:
                raise ValueError(
                    f"oracle file {path!r}: array {k} has shape {a[k].shape}, expected {shape} "
                    f"(vocab {V}, embedding {E}, hidden {H})"
                )
            if not np.isfinite(a[k]).all():
                raise ValueError(f"oracle file {path!r}: array {k} holds non-finite values")
        oracle = cls(V, E, H, max_length=max_length)
        gates = ("i", "f", "og", "c")
        idx = {"i": ("01_Wi", "02_Ui", "03_bi"), "f": ("04_Wf", "05_Uf", "06_bf"),
               "og": ("07_Wog", "08_Uog", "09_bog"), "c": ("10_Wc", "11_Uc", "12_bc")}
        with torch.no_grad():
            oracle.embedding.copy_(torch.from_numpy(a["00_g_embeddings"]))
            oracle.W.copy_(torch.from_numpy(np.concatenate([a[idx[g][0]] for g in gates], 1)))
            oracle.U.copy_(torch.from_numpy(np.concatenate([a[idx[g][1]] for g in gates], 1)))
            oracle.b.copy_(torch.from_numpy(np.concatenate([a[idx[g][2]] for g in gates], 0)))
            oracle.Wo.copy_(torch.from_numpy(a["13_Wo"].T.copy()))
            oracle.bo.copy_(torch.from_numpy(a["14_bo"]))
        oracle.source = path
        return oracle

    @classmethod
    def load(
        cls, path: Optional[Union[str, os.PathLike]] = None, max_length: int = 20, seed: int = 0,
        quiet: bool = False,
    ) -> OracleLSTM:
        """The published oracle from ``path`` (default: ``<data dir>/oracle_lstm/target_params.npz``).

        When no path is given and the default file is absent, falls back to a freshly
        initialized oracle of the same architecture from ``seed``, with a one-line notice that
        its numbers are not comparable to published ones. An explicit missing path raises.
        """
        if path is not None:
            return cls.from_npz(path, max_length=max_length)
        default = data_path("oracle_lstm", "target_params.npz")
        if default is not None:
            return cls.from_npz(default, max_length=max_length)
        if not quiet:
            root = data_dir()
            where = f"in {root}" if root is not None else "(no data directory: set TEXTGYM_DATA)"
            print(
                f"textgym: oracle_lstm/target_params.npz not found {where}; using a freshly "
                f"initialized oracle (seed {seed}): NLL-oracle numbers are not comparable to published ones",
                file=sys.stderr,
            )
        return cls(max_length=max_length, seed=seed)

    # ------------------------------------------------------------------ the LSTM
    def cell(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: x (N, E), h and c (N, H) -> new (h, c)."""
        z = x @ self.W + h @ self.U + self.b
        H = self.hidden_dim
        i = torch.sigmoid(z[:, :H])
        f = torch.sigmoid(z[:, H : 2 * H])
        o = torch.sigmoid(z[:, 2 * H : 3 * H])
        c = f * c + i * torch.tanh(z[:, 3 * H :])
        return o * torch.tanh(c), c

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """h (N, H) -> (N, V) output logits h·Wo + bo."""
        return F.linear(h, self.Wo, self.bo)

    def logit_bound(self) -> float:
        """``max_v Σ_j |Wo[v, j]| + |bo[v]|``, a bound on ``|logits|``: every ``|h_j| <= 1``
        because h = o · tanh(c) with o in (0, 1). About 40 for the SeqGAN oracle. Cached until
        the weights change (in place or by moving them)."""
        key = (self.Wo._version, self.bo._version, self.Wo.data_ptr(), self.bo.data_ptr())
        if getattr(self, "_bound_key", None) != key:
            self._bound = linear_logit_bound(self.Wo, self.bo)
            self._bound_key = key
        return self._bound

    def _zeros(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.zeros(n, self.hidden_dim, device=self.Wo.device)
        return z, z.clone()

    def _check_tokens(self, tokens: torch.Tensor) -> None:
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be a (N, T) tensor, got shape {tuple(tokens.shape)}")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.vocab_size):
            raise ValueError(
                f"token ids must lie in [0, {self.vocab_size}) for the oracle; got range "
                f"[{int(tokens.min())}, {int(tokens.max())}] (strip padding with `lengths`)"
            )

    @torch.no_grad()
    def hidden_states(self, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: tokens (N, T) -> (N, T, H), ``[:, t]`` the state in which x_t is chosen.

        One call of torch's fused LSTM (the gates reordered to its i, f, c̃, o), not a Python loop
        over :meth:`cell`: the same recurrence, equal to float32 rounding (tested).
        """
        N, T = tokens.shape
        H = self.hidden_dim
        inputs = torch.cat([torch.full((N, 1), START_TOKEN, dtype=torch.long, device=tokens.device), tokens[:, :-1]], 1)

        def reorder(m: torch.Tensor) -> torch.Tensor:  # gate blocks i, f, o, c̃ -> i, f, c̃, o
            return torch.cat([m[..., : 2 * H], m[..., 3 * H :], m[..., 2 * H : 3 * H]], -1)

        params = [reorder(self.W).t().contiguous(), reorder(self.U).t().contiguous(), reorder(self.b), torch.zeros_like(self.b)]
        h0 = self.Wo.new_zeros(1, N, H)
        with warnings.catch_warnings():  # cuDNN packs these small weights at each call, and says so
            warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous")
            return torch.lstm(self.embedding[inputs], (h0, h0), params, True, 1, 0.0, False, False, True)[0]

    @torch.no_grad()
    def log_probs(
        self, tokens: torch.Tensor, temperature: float = 1.0,
        start: Optional[torch.Tensor] = None, stop: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Teacher-forced ``log p(x_t | x_<t)`` at a sampling temperature: tokens (N, T) int64 -> (N, T) float.

        ``start`` / ``stop`` (N,) int64, optional: score only the positions ``start[i] <= t < stop[i]``
        of row i; the others are 0 and cost no output projection (the LSTM still reads them).
        """
        self._check_tokens(tokens)
        tokens = tokens.to(self.Wo.device)
        N, T = tokens.shape
        if N == 0 or T == 0:
            return torch.zeros(N, T, device=tokens.device)
        step = max(1, self.LOG_PROB_ROWS // T)
        if N > step:  # rows are independent; this bounds the (rows, T, H) hidden states kept
            part = lambda x, i: None if x is None else x[i : i + step]  # noqa: E731
            return torch.cat([self.log_probs(tokens[i : i + step], temperature, part(start, i), part(stop, i))
                              for i in range(0, N, step)])
        hs, targets = self.hidden_states(tokens).reshape(N * T, -1), tokens.reshape(-1)
        scored = None
        if start is not None:
            scored = ~length_mask(start.to(tokens.device), T)
        if stop is not None:
            before = length_mask(stop.to(tokens.device), T)
            scored = before if scored is None else scored & before
        bound = self.logit_bound()
        if scored is None:
            return linear_log_softmax(hs, self.Wo, self.bo, targets, temperature, bound=bound).view(N, T)
        out = torch.zeros(N * T, device=tokens.device)
        idx = scored.reshape(-1).nonzero().squeeze(1)
        out[idx] = linear_log_softmax(hs[idx], self.Wo, self.bo, targets[idx], temperature, bound=bound)
        return out.view(N, T)

    def nll(self, tokens: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> float:
        """Mean per-token negative log-likelihood (nats) of tokens (N, T) over valid positions."""
        lp = self.log_probs(strip_padding(tokens, lengths))
        if lengths is None:
            return float(-lp.mean())
        mask = length_mask(lengths.to(lp.device), lp.shape[1])
        return float(-(lp * mask).sum() / mask.sum())

    @torch.no_grad()
    def rollout(
        self,
        tokens: torch.Tensor,
        prefix_lengths: torch.Tensor,
        *,
        temperature: float = 1.0,
        generator: Optional[torch.Generator] = None,
    ) -> torch.Tensor:
        """Complete prefixes (the RolloutPolicy protocol).

        tokens (M, T) int64: row i keeps tokens[i, :prefix_lengths[i]] and samples the rest.
        All rows step in lock-step; the hidden state is updated for every row (cheap, H=32),
        the output projection and sampling only for rows past their prefix.
        Returns a new (M, T) int64 tensor.
        """
        tokens = tokens.to(self.Wo.device).clone()
        M, T = tokens.shape
        prefix_lengths = prefix_lengths.to(tokens.device)
        generator = generator_on(generator, tokens.device)  # an env's generator on another device
        bound = self.logit_bound()
        h, c = self._zeros(M)
        prev = torch.full((M,), START_TOKEN, dtype=torch.long, device=tokens.device)
        max_prefix = int(prefix_lengths.max()) if M else 0
        for t in range(T):
            h, c = self.cell(self.embedding[prev], h, c)
            sample_past_prefix(tokens, t, h, prefix_lengths, max_prefix, self.Wo, self.bo, temperature, generator, bound)
            prev = tokens[:, t]
        return tokens

    def sample(
        self, n: int, *, temperature: float = 1.0, generator: Optional[torch.Generator] = None,
        length: Optional[int] = None,
    ) -> torch.Tensor:
        """Draw n sequences of ``length`` (default ``max_length``) tokens: (n, T) int64."""
        T = self.max_length if length is None else length
        empty = torch.zeros(n, T, dtype=torch.long, device=self.Wo.device)
        return self.rollout(empty, torch.zeros(n, dtype=torch.long), temperature=temperature, generator=generator)

    def sample_dataset(self, n: int, seed: int, batch_size: int = 2000) -> torch.Tensor:
        """A reproducible set of n samples at temperature 1: (n, T), drawn with a generator on the
        oracle's device seeded with ``seed`` (the same seed draws other samples on another device)."""
        g = torch.Generator(device=self.Wo.device).manual_seed(seed)
        return torch.cat([self.sample(min(batch_size, n - i), generator=g) for i in range(0, n, batch_size)])

