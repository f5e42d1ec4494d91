"""In-filling (MaskGAN's task) as a batched Gymnasium environment: ``textgym/Infill-v0``.

An episode is one real sequence x (drawn from the data, or given) with some positions blanked
out; the actions fill the blanks from left to right, and the episode ends when every blank is
filled. Ids: tokens ``0..V-1``, ``PAD = V`` beyond a sequence's length, ``MASK = V + 1`` at a
blank.

**Observation** (flat, so that any SB3 policy reads it): ``(2L,)`` int64,

- ``obs[:L]``, the *context*: x with ``MASK`` at the blanks (``PAD`` beyond the length);
- ``obs[L:]``, the *filled* sequence so far: the context with the blanks filled up to the
  cursor (the next blank to fill), ``MASK`` at the blanks still open.

**Masks** (:func:`make_blanks`, a fresh draw per episode from the env's seeded generator), over
the maskable positions ``t < m_i`` (``m_i`` = the length, less a final ``<eos>`` on corpora):

- ``"contiguous"`` (MaskGAN's GAN mode): one span of ``span`` tokens, or of
  ``max(1, round(rate · m_i))``, at a uniform start;
- ``"random"``: each maskable position independently with probability ``rate`` (at least one
  per sequence: a row that draws none gets one uniform position).

**Rewards** (``reward=``):

- ``"dense"``: at the step that fills blank t, a context-conditioned discriminator's
  ``transform(D_t)``, where ``D_t = P(x̂_t real | context, x̂_≤t)`` is its per-position output
  (an object with ``score_filled(context, filled, lengths) -> (N, L)`` logits, e.g.
  :class:`discriminators.infill.Seq2SeqDiscriminator`). With the oracle
  (``discriminator="oracle"``, oracle data) the reward of filling blank t is
  ``Σ_{s=t}^{q-1} log p_oracle(x̂_s | x̂_<s)`` with q the next blank (or the length): every
  position's log-likelihood is paid once, as soon as everything before it is known, and an
  episode's rewards add up to ``log p(x̂) - log p(x_<first blank)`` (the second term does not
  depend on the actions).
- ``"terminal"``: at the last fill only: the mean of ``transform(D_t)`` over the blanks, or with
  the oracle the completed sequence's mean per-token log-likelihood.

``discriminator="constant"`` gives every filled token the logit 0 (D = 1/2): the
no-information control.

:class:`InfillVecEnv` steps N episodes as one tensor operation (the dense reward scores the
whole filled batch at every step: O(L) discriminator work per step, causal so the open blanks
do not matter). :class:`InfillEnv` is the single-env face for ``gym.make("textgym/Infill-v0")``.
Metrics of in-filled text: :func:`unique_ngram_share`.
"""
from __future__ import annotations

import secrets
from typing import Any, Dict, Optional, Tuple, Union

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from textgym.data import OracleData, TextData, resolve_data
from textgym.env import TokenEnv, _single, array_or_tensor, parse_autoreset_mode
from textgym.masks import length_mask, strip_padding
from textgym.protocols import device_of, is_int
from textgym.rewards import TRANSFORMS
from textgym.scorers import _checked

MASK_MODES = ("contiguous", "random")


def check_mask_options(rate: float, mode: str, span: Optional[int], max_length: int) -> None:
    """ValueError for a rate outside (0, 1), an unknown mode, or a span outside [1, max_length]."""
    if mode not in MASK_MODES:
        raise ValueError(f"mask_mode must be one of {MASK_MODES}, got {mode!r}")
    if isinstance(rate, (bool, np.bool_)) or not isinstance(rate, (int, float, np.integer, np.floating)) or not 0 < rate < 1:
        raise ValueError(f"mask_rate must lie in (0, 1) (the share of tokens to blank out), got {rate!r}")
    if span is not None:
        if mode != "contiguous":
            raise ValueError("mask_span applies to mask_mode='contiguous'")
        if not isinstance(span, int) or isinstance(span, bool) or span < 1:
            raise ValueError(f"mask_span must be an integer >= 1, got {span!r}")
        if span > max_length:
            raise ValueError(f"mask_span={span} is longer than the sequences (max_length={max_length})")


def maskable_lengths(lengths: torch.Tensor, eos_id: Optional[int], tokens: Optional[torch.Tensor] = None) -> torch.Tensor:
    """(N,) positions that may be blanked: the length, less a final ``<eos>`` on corpora. With
    ``tokens`` (N, T), only rows whose last token is ``<eos>`` lose it (a sentence cut at
    ``max_length`` has none); without, every row is taken to end with one."""
    if eos_id is None:
        return lengths
    if tokens is None:
        return lengths - 1
    last = tokens.gather(1, (lengths - 1).clamp(min=0)[:, None]).squeeze(1)
    return lengths - ((last == eos_id) & (lengths > 0)).long()


def make_blanks(lengths: torch.Tensor, max_length: int, rate: float, mode: str = "contiguous",
                span: Optional[int] = None, *, eos_id: Optional[int] = None, tokens: Optional[torch.Tensor] = None,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """(N,) lengths -> (N, L) bool, True at the blanks (see the module docstring); ``eos_id`` and
    the ``tokens`` themselves say which rows end with an ``<eos>`` that is never blanked.

    ValueError when a sequence has no maskable position or is shorter than ``span``.
    """
    check_mask_options(rate, mode, span, max_length)
    m = maskable_lengths(lengths, eos_id, tokens)
    if m.numel() and int(m.min()) < 1:
        raise ValueError("a sequence has no token to blank out (length 0, or only <eos>)")
    N, dev = lengths.shape[0], lengths.device
    pos = torch.arange(max_length, device=dev)
    if mode == "random":
        blanks = (torch.rand(N, max_length, generator=generator, device=dev) < rate) & (pos < m[:, None])
        pick = (torch.rand(N, generator=generator, device=dev) * m).long().clamp(max=max_length - 1)
        none = ~blanks.any(1)
        blanks[none, pick[none]] = True
        return blanks
    if span is not None:
        if m.numel() and int(m.min()) < span:
            raise ValueError(f"mask_span={span} is longer than a sequence ({int(m.min())} maskable tokens)")
        k = torch.full_like(m, span)
    else:
        k = (m.double() * rate).round().long().clamp(min=1)
    start = (torch.rand(N, generator=generator, device=dev) * (m - k + 1)).long()
    return (pos >= start[:, None]) & (pos < (start + k)[:, None])


def unique_ngram_share(tokens: torch.Tensor, lengths: torch.Tensor, blanks: torch.Tensor, n: int) -> float:
    """Share of distinct n-grams among the n-grams that contain at least one filled token
    (MaskGAN's "% unique n-grams" of in-filled text, counted over the whole batch): 1 when no
    n-gram repeats, low when the generator fills every blank the same way. NaN without any."""
    seen: Dict[Tuple[int, ...], int] = {}
    total = 0
    rows, lens, bl = tokens.tolist(), lengths.tolist(), blanks.tolist()
    for row, length, b in zip(rows, lens, bl, strict=True):
        for s in range(0, length - n + 1):
            if any(b[s : s + n]):
                g = tuple(row[s : s + n])
                seen[g] = seen.get(g, 0) + 1
                total += 1
    return len(seen) / total if total else float("nan")


class ConstantInfillScorer:
    """The no-information control: logit 0 (D = 1/2) at every position."""

    is_probabilistic = True

    def score_filled(self, context: torch.Tensor, filled: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return torch.zeros(filled.shape, device=filled.device)



class InfillBox(spaces.Box):
    """The in-filling env's observation space, ``(2L,)`` ids: the context with its blanks, then
    the fill. A Box like any other for SB3's MLP policies; its own class tells the policies that
    read a token prefix (``TokenFeaturesExtractor``, ``GeneratorPolicy``) to refuse it instead of
    misreading the mask id as padding."""

class InfillVecEnv(VectorEnv):
    """N in-filling episodes stepped as one batched tensor operation (see the module docstring).

    Args:
        num_envs: N.
        data: ``"oracle"`` (default), a text file or a TextData.
        mask_rate: share of the maskable tokens to blank out, in (0, 1) (MaskGAN: 0.5).
        mask_mode: ``"contiguous"`` (default) or ``"random"``.
        mask_span: contiguous mode: a fixed span length instead of the rate.
        reward: ``"dense"`` (default) or ``"terminal"``.
        discriminator: ``"oracle"`` (default on oracle data), ``"constant"``, or an object with
            ``score_filled(context, filled, lengths)`` -> (N, L) logits of P(real).
        transform: ``"log"`` (log D, MaskGAN's; default), ``"prob"``, ``"logit"``; ignored by the oracle.
        split: draw episodes from ``"train"`` (default) or ``"test"`` sequences.
        device, seed: where tensors live; seeds the draws of sequences and masks.
        autoreset_mode: NEXT_STEP (default) or SAME_STEP.

    ``reset(options=...)``: ``"tokens"`` (N, L) and ``"lengths"`` (N,) give the sequences,
    ``"blanks"`` (N, L) bool the masks (drawn when absent), ``"reset_mask"`` (N,) which envs to
    reset. ``infos`` of reset and step hold ``"blanks"`` (N, L) and ``"cursor"`` (N,).
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}
    #: the per-episode state tensors (what a copy with its own episodes must clone)
    STATE = ("tokens", "context", "filled", "blanks", "lengths", "cursor", "_finished")

    def __init__(self, num_envs: int = 1, data: Union[str, TextData] = "oracle", mask_rate: float = 0.5,
                 mask_mode: str = "contiguous", mask_span: Optional[int] = None, reward: str = "dense",
                 discriminator: Any = None, transform: str = "log", split: str = "train",
                 device: Union[str, torch.device] = "cpu", seed: Optional[int] = None,
                 autoreset_mode: Union[str, AutoresetMode] = AutoresetMode.NEXT_STEP,
                 max_length: Optional[int] = None) -> None:
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        self.data = resolve_data(data, max_length)
        V, L = self.data.vocab_size, self.data.max_length
        check_mask_options(mask_rate, mask_mode, mask_span, L)
        if reward not in ("dense", "terminal"):
            raise ValueError(f"reward must be 'dense' or 'terminal', got {reward!r}")
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        autoreset_mode = parse_autoreset_mode(autoreset_mode, (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP))
        pool, pool_lengths = (self.data.train, self.data.train_lengths) if split == "train" else \
            (self.data.test, self.data.test_lengths)
        if pool is None or pool_lengths is None:
            raise ValueError(f"the data has no {split} sequences")
        self.device = torch.device(device)
        self.pool, self.pool_lengths = pool.to(self.device), pool_lengths.to(self.device)
        shortest = int(maskable_lengths(self.pool_lengths, self.data.eos_id, self.pool).min())
        if mask_span is not None and mask_span > shortest:
            raise ValueError(f"mask_span={mask_span} is longer than the shortest {split} sequence "
                             f"({shortest} maskable tokens)")
        if shortest < 1:
            raise ValueError(f"a {split} sequence has no token to blank out")
        self.num_envs, self.vocab_size, self.max_length = num_envs, V, L
        self.pad_id, self.mask_id, self.eos_id = V, V + 1, self.data.eos_id
        self.mask_rate, self.mask_mode, self.mask_span, self.reward_mode = mask_rate, mask_mode, mask_span, reward
        self.autoreset_mode = autoreset_mode
        self.metadata = {**self.metadata, "autoreset_mode": autoreset_mode}
        self.oracle = None
        if discriminator is None:
            discriminator = "oracle" if isinstance(self.data, OracleData) else None
        if discriminator == "oracle":
            if not isinstance(self.data, OracleData):
                raise ValueError("discriminator='oracle' needs data='oracle' (the synthetic benchmark)")
            self.oracle = self.data.oracle_on(self.device)
        elif discriminator == "constant":
            discriminator = ConstantInfillScorer()
        elif discriminator is None or not callable(getattr(discriminator, "score_filled", None)):
            raise ValueError("the in-filling env needs a context-conditioned discriminator: 'oracle' (oracle data), "
                             "'constant', or an object with score_filled(context, filled, lengths), such as "
                             "discriminators.infill.Seq2SeqDiscriminator")
        self.scorer = None if self.oracle is not None else discriminator
        if transform not in ("log", "prob", "logit"):
            raise ValueError(f"transform must be 'log', 'prob' or 'logit', got {transform!r}")
        self.transform = TRANSFORMS[transform].fn

        self.single_observation_space = InfillBox(0, V + 1, shape=(2 * L,), dtype=np.int64)
        self.single_action_space = spaces.Discrete(V)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        z = torch.zeros(num_envs, L, dtype=torch.long, device=self.device)
        self.tokens, self.context, self.filled = z.clone(), z.clone(), z.clone()
        self.blanks = torch.zeros(num_envs, L, dtype=torch.bool, device=self.device)
        self.lengths = torch.ones(num_envs, dtype=torch.long, device=self.device)
        self.cursor = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self._finished = torch.zeros(num_envs, dtype=torch.bool, device=self.device)
        self._started = False
        self.rng = torch.Generator(device=self.device)
        self.rng.manual_seed(secrets.randbits(63) if seed is None else int(seed))

    # ------------------------------------------------------------------ helpers
    def _obs(self) -> torch.Tensor:
        return torch.cat([self.context, self.filled], 1)

    def _infos(self) -> Dict[str, Any]:
        return {"blanks": self.blanks.clone(), "cursor": self.cursor.clone()}

    def _next_blank(self, after: torch.Tensor) -> torch.Tensor:
        """(N,) the first blank at a position > ``after`` (the length when none is left)."""
        pos = torch.arange(self.max_length, device=self.device)
        later = self.blanks & (pos[None] > after[:, None])
        return torch.where(later.any(1), later.float().argmax(1), self.lengths)

    def _load(self, rows: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor, blanks: torch.Tensor) -> None:
        L = self.max_length
        valid = length_mask(lengths, L)
        tokens = tokens.masked_fill(~valid, self.pad_id)
        self.tokens[rows], self.lengths[rows], self.blanks[rows] = tokens, lengths, blanks
        self.context[rows] = tokens.masked_fill(blanks, self.mask_id)
        self.filled[rows] = self.context[rows]
        self.cursor[rows] = self._next_blank(torch.full_like(self.lengths, -1))[rows]
        self._finished[rows] = False

    def _draw(self, n: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        idx = torch.randint(len(self.pool), (n,), generator=self.rng, device=self.device)
        tok, lens = self.pool[idx], self.pool_lengths[idx]
        blanks = make_blanks(lens, self.max_length, self.mask_rate, self.mask_mode, self.mask_span,
                             eos_id=self.eos_id, tokens=tok, generator=self.rng)
        return tok, lens, blanks

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
        """Start new episodes: ``(obs (N, 2L), infos)``."""
        super().reset(seed=seed if seed is None or not is_int(seed) else int(seed))  # a numpy integer as a Python one
        if seed is not None:
            self.rng.manual_seed(int(seed))
        options = options or {}
        unknown = set(options) - {"tokens", "lengths", "blanks", "reset_mask"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; valid: tokens, lengths, blanks, reset_mask")
        N, L = self.num_envs, self.max_length
        mask = options.get("reset_mask")
        mask = torch.ones(N, dtype=torch.bool, device=self.device) if mask is None else \
            torch.as_tensor(mask, device=self.device).bool().view(-1)
        if mask.shape != (N,):
            raise ValueError(f"options['reset_mask'] must have shape ({N},), got {tuple(mask.shape)}")
        rows = mask.nonzero().squeeze(1)
        if options.get("tokens") is not None:
            tok = torch.as_tensor(options["tokens"], device=self.device).long()
            lens = torch.as_tensor(options["lengths"], device=self.device).long().view(-1) \
                if options.get("lengths") is not None else torch.full((N,), L, device=self.device)
            if tok.shape != (N, L) or lens.shape != (N,) or int(lens.min()) < 1 or int(lens.max()) > L:
                raise ValueError(f"options['tokens'] must be (N, L) = ({N}, {L}) with lengths (N,) in [1, {L}]")
            valid = tok[length_mask(lens, L)]
            if valid.numel() and (int(valid.min()) < 0 or int(valid.max()) >= self.vocab_size):
                raise ValueError(f"options['tokens'] hold ids outside the vocabulary [0, {self.vocab_size})")
            tok, lens = tok[rows], lens[rows]
        else:
            tok, lens, _ = self._draw(len(rows))
        if options.get("blanks") is not None:
            blanks = torch.as_tensor(options["blanks"], device=self.device).bool()
            if blanks.shape != (N, L):
                raise ValueError(f"options['blanks'] must be (N, L) = ({N}, {L}) bool, got {tuple(blanks.shape)}")
            blanks = blanks[rows]
            if bool((blanks & ~length_mask(lens, L)).any()) or not bool(blanks.any(1).all()):
                raise ValueError("options['blanks'] must mark at least one position per episode, all within its length")
        else:
            blanks = make_blanks(lens, L, self.mask_rate, self.mask_mode, self.mask_span, eos_id=self.eos_id,
                                 tokens=tok, generator=self.rng)
        self._load(rows, tok, lens, blanks)
        self._started = True
        return self._obs(), self._infos()

    def step(self, actions: Any):
        """Fill each env's next blank: ``(obs, rewards, terminations, truncations, infos)``."""
        if not self._started:
            raise RuntimeError("step() was called before reset(); call reset() first")
        a = torch.as_tensor(np.asarray(actions) if not torch.is_tensor(actions) else actions, device=self.device)
        if a.shape != (self.num_envs,) or a.dtype.is_floating_point or a.dtype == torch.bool:
            raise ValueError(f"actions must be ({self.num_envs},) integer token ids, got {tuple(a.shape)} {a.dtype}")
        if int(a.min()) < 0 or int(a.max()) >= self.vocab_size:
            raise ValueError(f"actions must be token ids in [0, {self.vocab_size})")
        a = a.long()
        N = self.num_envs
        if self.autoreset_mode == AutoresetMode.NEXT_STEP and bool(self._finished.any()):
            rows = self._finished.nonzero().squeeze(1)
            self._load(rows, *self._draw(len(rows)))
            active = ~torch.zeros(N, dtype=torch.bool, device=self.device).index_fill(0, rows, True)
        else:
            active = torch.ones(N, dtype=torch.bool, device=self.device)
        r_ = torch.arange(N, device=self.device)
        at = self.cursor.clamp(max=self.max_length - 1)
        self.filled[r_, at] = torch.where(active, a, self.filled[r_, at])
        nxt = self._next_blank(self.cursor)
        done = active & (nxt >= self.lengths)
        rewards = torch.where(active, self._rewards(at, nxt, done), 0.0)  # a reset row's reward is exactly 0
        self.cursor = torch.where(active, nxt, self.cursor)
        if self.autoreset_mode == AutoresetMode.SAME_STEP:
            final, final_info = self._obs(), self._infos()
            rows = done.nonzero().squeeze(1)
            if rows.numel():
                self._load(rows, *self._draw(len(rows)))
            infos = self._infos()  # of the episodes the returned observations show, the new ones included
            infos["final_obs"], infos["final_info"] = final, final_info
            infos["_final_obs"] = infos["_final_info"] = done.clone()  # one mask for both (one copy per step)
            self._finished = torch.zeros_like(done)
        else:
            infos = self._infos()
            self._finished = done
        return self._obs(), rewards.float(), done.clone(), torch.zeros_like(done), infos

    @torch.no_grad()
    def _rewards(self, at: torch.Tensor, nxt: torch.Tensor, done: torch.Tensor) -> torch.Tensor:
        N, L = self.num_envs, self.max_length
        r_ = torch.arange(N, device=self.device)
        pos = torch.arange(L, device=self.device)
        if self.oracle is not None:
            # the open blanks lie after nxt and cannot change log p(x_s | x_<s) for s < nxt
            readable = strip_padding(self.filled.masked_fill(self.filled == self.mask_id, 0), self.lengths)
            lp = self.oracle.log_probs(readable).to(self.device)  # (N, L)
            if self.reward_mode == "dense":
                span = (pos[None] >= at[:, None]) & (pos[None] < nxt[:, None])
                return (lp * span).sum(1)
            whole = (lp * length_mask(self.lengths, L)).sum(1) / self.lengths
            return torch.where(done, whole, torch.zeros_like(whole))
        assert self.scorer is not None
        on = device_of(self.scorer, self.device)  # the scorer's device (a model), else the env's
        raw = self.scorer.score_filled(self.context.to(on), self.filled.to(on), self.lengths.to(on)).to(self.device)
        score = self.transform(_checked(self.scorer, raw, tuple(self.filled.shape)))  # finite, (N, L)
        if self.reward_mode == "dense":
            return score[r_, at]
        mean = torch.where(self.blanks, score, 0.0).sum(1) / self.blanks.sum(1)
        return torch.where(done, mean, torch.zeros_like(mean))

    def action_masks(self) -> torch.Tensor:
        """(N, V) bool: every token may fill a blank."""
        return torch.ones(self.num_envs, self.vocab_size, dtype=torch.bool, device=self.device)

    def close_extras(self, **kwargs: Any) -> None:
        pass


class InfillEnv(TokenEnv):
    """The single-env face of :class:`InfillVecEnv` (numpy observations), same keyword arguments.

    Its vector env autoresets in the same step; this face keeps the finished episode (the
    observation, ``render``, ``info``) until ``reset`` and refuses steps in between, as
    :class:`~textgym.env.TokenEnv` does. ``info`` is ``{"blanks", "cursor"}`` after every call."""

    def __init__(self, render_mode: Optional[str] = None, **kwargs: Any) -> None:
        self._wrap(render_mode, InfillVecEnv(num_envs=1, autoreset_mode=AutoresetMode.SAME_STEP, **_single(kwargs)))
        self._ended: Optional[torch.Tensor] = None  # the observation (2L,) of a finished episode, until reset

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
        # TokenEnv's reset speaks of prefixes; gymnasium takes a Python int seed only
        gym.Env.reset(self, seed=seed if seed is None or not is_int(seed) else int(seed))
        opts = dict(options or {})
        for key in ("tokens", "blanks"):
            if opts.get(key) is not None:
                opts[key] = array_or_tensor(opts[key])[None]
        if opts.get("lengths") is not None:
            opts["lengths"] = array_or_tensor(opts["lengths"]).reshape(1)
        obs, info = self.venv.reset(seed=seed, options=opts)
        self._ended = None
        return obs[0].cpu().numpy(), {k: v[0].cpu().numpy() for k, v in info.items()}

    def step(self, action: Any):
        if self._ended is not None:
            raise RuntimeError("the episode has ended; call reset() before stepping again")
        obs, r, term, trunc, info = self.venv.step(array_or_tensor(action).reshape(1))
        if bool(term[0]):  # the finished episode's observation and infos, not those of the one reset in its place
            self._ended = info["final_obs"][0]
            shown = {k: v[0].cpu().numpy() for k, v in info["final_info"].items()}
            return self._ended.cpu().numpy(), float(r[0]), True, bool(trunc[0]), shown
        shown = {k: v[0].cpu().numpy() for k, v in info.items() if "final_" not in k}
        return obs[0].cpu().numpy(), float(r[0]), False, bool(trunc[0]), shown

    def render(self) -> Optional[str]:
        if self.render_mode != "ansi":
            return None
        v = self.venv
        if self._ended is not None:  # the finished episode, not the one the vector env drew next
            context, filled = self._ended[: v.max_length], self._ended[v.max_length :]
            n = int((context != v.pad_id).sum())
        else:
            filled, n = v.filled[0], int(v.lengths[0])
        words = [v.data.decode([t]) if t < v.vocab_size else "_" for t in filled[:n].tolist()]
        return " ".join(words)

