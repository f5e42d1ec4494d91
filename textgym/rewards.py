"""Rewards: terminal, Monte-Carlo rollout (SeqGAN) and dense per-prefix, plus shaping transforms.

A reward object turns the env's state after a step into one reward per env. All three modes
work with any scorer of the :class:`~textgym.protocols.Discriminator` protocol, called in eval
mode without gradient (:mod:`textgym.scorers`), and with any transform from ``TRANSFORMS``:

=========== ======================================================= ============================
name        reward from a scorer output s                           needs
=========== ======================================================= ============================
``prob``    D = σ(s)                                                a probabilistic scorer
``log``     log D = log σ(s)                                        a probabilistic scorer
``logit``   s                                                       a probabilistic scorer
``maligan`` m · r_D(x_i) / Σ_j r_D(x_j), r_D = D/(1-D) = exp(s),     probabilistic, terminal
            over the m sequences that finish in the same step
            (computed exactly as m · softmax(s); mean 1)
``identity``s unchanged                                             any scorer
=========== ======================================================= ============================

Modes, for a sequence x_1..x_T generated one token per step (Y_{1:t} the prefix after step t):

- ``terminal``: r_t = 0 for t < T, r_T = f(D(Y_{1:T})).
- ``mc`` (SeqGAN, eq. 4): r_t = (1/n) Σ_k f(D(Y^k_{1:T})), Y^k ~ MC^G(Y_{1:t}; n) completions
  by the rollout policy, for t < T; r_T = f(D(Y_{1:T})). All envs × all rollouts are one
  batched generation and one scoring pass per step; :meth:`MCReward.sequence_rewards` does
  all prefixes of finished sequences at once (what a SeqGAN trainer needs).
- ``dense`` (ScratchGAN/MaskGAN): r_t = f(D(Y_{1:t})) from a scorer that scores every prefix.
"""
from __future__ import annotations

import math
import warnings
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Tuple, Union, cast

import torch
import torch.nn.functional as F

from discriminators.base import DivergenceError
from discriminators.graphed import warm_up
from textgym import scorers
from textgym.masks import length_mask, pad_after
from textgym.protocols import Discriminator, RolloutPolicy, is_int


class Transform:
    """A named reward transform ``f``; ``batch`` transforms normalize over the rows scored together."""

    def __init__(self, name: str, fn: Callable[[torch.Tensor], torch.Tensor], needs_probability: bool, batch: bool = False):
        self.name, self.fn, self.needs_probability, self.batch = name, fn, needs_probability, batch

    def __call__(self, s: torch.Tensor) -> torch.Tensor:
        return self.fn(s)

    def __repr__(self) -> str:
        return f"Transform({self.name!r})"


def maligan_weights(logits: torch.Tensor) -> torch.Tensor:
    """MaliGAN's self-normalized weights ``m · r_D(x_i) / Σ_j r_D(x_j)`` with r_D = exp(logit).

    logits (m,) -> (m,) weights with mean 1, or (B, m) -> (B, m), each row normalized over its
    m entries (the last dim). r_D = D/(1-D) overflows as D → 1, so the ratio is computed as
    ``m · softmax(s)``: exp(s_i - max_j s_j) / Σ_j exp(s_j - max_j s_j), which is the same
    number exactly (the shift cancels) and finite for any finite logits, however large or small.
    """
    m = logits.shape[-1]
    return m * torch.softmax(logits, dim=-1)


TRANSFORMS: Dict[str, Transform] = {
    t.name: t
    for t in (
        Transform("prob", torch.sigmoid, True),
        Transform("log", F.logsigmoid, True),
        Transform("logit", lambda s: s, True),
        Transform("maligan", maligan_weights, True, batch=True),
        Transform("identity", lambda s: s, False),
    )
}


def make_transform(transform: Union[str, Transform, None], scorer: Discriminator) -> Transform:
    """Resolve a transform name (None: ``prob`` for probabilistic scorers, else ``identity``)."""
    probabilistic = bool(getattr(scorer, "is_probabilistic", True))
    if transform is None:
        transform = "prob" if probabilistic else "identity"
    if isinstance(transform, str):
        if transform not in TRANSFORMS:
            raise ValueError(f"unknown reward transform {transform!r}; valid: {sorted(TRANSFORMS)}")
        transform = TRANSFORMS[transform]
    if transform.needs_probability and not probabilistic:
        raise ValueError(
            f"the {transform.name!r} transform needs a probabilistic scorer (logits of P(real)), but "
            f"{type(scorer).__name__} gives plain scores; use transform='identity'"
        )
    return transform


def finish_sequences(tokens: torch.Tensor, eos_id: Optional[int],
                     pad_id: Optional[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut sampled sequences at their first ``eos_id``: (M, T) -> (tokens padded after EOS, lengths (M,)).

    Without an ``eos_id`` every sequence is whole and ``pad_id`` is not used (it may be None).
    """
    M, T = tokens.shape
    if eos_id is None:
        return tokens, torch.full((M,), T, dtype=torch.long, device=tokens.device)
    if pad_id is None:
        raise ValueError("cutting sequences at <eos> needs the pad id (bind() the reward to the env's vocabulary)")
    is_eos = tokens == eos_id
    first = torch.where(is_eos.any(1), is_eos.float().argmax(1), torch.full((M,), T - 1, device=tokens.device))
    lengths = first + 1
    return pad_after(tokens, lengths, pad_id), lengths


class Reward:
    """Base of the reward modes. ``bind`` attaches the env's vocabulary; ``step`` gives rewards.

    Args:
        scorer: an object of the Discriminator protocol.
        transform: a name from ``TRANSFORMS`` or a :class:`Transform` (None: see make_transform).
    """

    mode = "base"

    def __init__(self, scorer: Discriminator, transform: Union[str, Transform, None] = None) -> None:
        self.scorer = scorer
        self.transform = make_transform(transform, scorer)
        if self.transform.batch and self.mode != "terminal":
            raise ValueError(
                f"the {self.transform.name!r} transform normalizes over a synchronous batch of finished "
                f"sequences and works with reward='terminal' only, not {self.mode!r}"
            )
        self.vocab_size: Optional[int] = None
        self.eos_id: Optional[int] = None
        self.pad_id: Optional[int] = None

    def bind(self, vocab_size: int, eos_id: Optional[int], pad_id: int) -> Reward:
        """Check that the scorer's vocabulary is the env's and remember the special ids."""
        sv = getattr(self.scorer, "vocab_size", None)
        if sv is not None and sv != vocab_size:
            raise ValueError(
                f"the scorer {type(self.scorer).__name__} has a vocabulary of {sv} tokens but the env has "
                f"{vocab_size}; build the discriminator with vocab_size={vocab_size}"
            )
        self.vocab_size, self.eos_id, self.pad_id = vocab_size, eos_id, pad_id
        return self

    def _final(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.transform(scorers.score(self.scorer, tokens, lengths)).to(tokens.device)

    def step(
        self, tokens: torch.Tensor, lengths: torch.Tensor, done: torch.Tensor, active: torch.Tensor,
        generator: Optional[torch.Generator] = None,
    ) -> torch.Tensor:
        """tokens (N, T), lengths (N,) after the step, done/active (N,) bool -> rewards (N,) float32.

        ``active`` marks envs that took a step now (not autoresetting); ``done`` those of them
        that finished their sequence with this step.
        """
        raise NotImplementedError


class TerminalReward(Reward):
    """r_T = f(D(Y_{1:T})) when the sequence finishes, 0 before."""

    mode = "terminal"

    def step(self, tokens, lengths, done, active, generator=None):
        r = torch.zeros(tokens.shape[0], device=tokens.device)
        idx = done.nonzero().squeeze(1)
        if idx.numel():
            r[idx] = self._final(tokens[idx], lengths[idx])
        return r


class DenseReward(Reward):
    """r_t = f(D(Y_{1:t})) at every step, from a scorer with per-prefix scores."""

    mode = "dense"

    def __init__(self, scorer: Discriminator, transform: Union[str, Transform, None] = None) -> None:
        super().__init__(scorer, transform)
        if not scorers.supports_prefixes(scorer):
            raise ValueError(
                f"reward='dense' needs a scorer with per-prefix scores (score_prefixes), and "
                f"{type(scorer).__name__} has none; use an 'rnn' discriminator or reward='terminal'/'mc'"
            )

    def step(self, tokens, lengths, done, active, generator=None):
        r = torch.zeros(tokens.shape[0], device=tokens.device)
        idx = active.nonzero().squeeze(1)
        if idx.numel():
            T = int(lengths[idx].max())  # score only the columns that exist so far
            s = scorers.score_prefixes(self.scorer, tokens[idx, :T], lengths[idx]).to(tokens.device)
            r[idx] = self.transform(s.gather(1, (lengths[idx] - 1)[:, None]).squeeze(1))
        return r

    def sequence_rewards(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Rewards of every step of finished sequences at once: (N, T) (0 beyond each length)."""
        s = self.transform(scorers.score_prefixes(self.scorer, tokens, lengths).to(tokens.device))
        return s * length_mask(lengths, tokens.shape[1])


#: eager calls of a chunk shape before :class:`MCReward` (``cuda_graph=True``) captures it
GRAPH_WARMUP = 2
#: captured chunk shapes kept by an :class:`MCReward` (each holds its own memory), the least
#: recently used dropped first
MAX_GRAPHS = 4


class MCReward(Reward):
    """SeqGAN's Monte-Carlo rollout reward.

    Args:
        scorer, transform: as in :class:`Reward`.
        rollout_policy: an object of the RolloutPolicy protocol; replace it during training
            with :meth:`set_rollout_policy` (or assign ``.rollout_policy``).
        n_rollouts: n, completions per prefix (16 in SeqGAN).
        temperature: sampling temperature of the rollouts.
        chunk_rows: at most this many rollout rows are generated and scored at once, which
            bounds memory at about ``chunk_rows × V`` floats for a policy or scorer that makes
            all its logits at once. Default (None): 16384 (the oracle and the LSTM generator
            split their own work further to cache size). Larger chunks give the oracle's
            prefix-shared scoring larger groups per prefix length, the CNN's scoring on the CPU
            room for more lookup tables, and accelerators fewer, larger kernels; smaller ones
            only add Python overhead (``bench/mc_rollout.py``).
        cuda_graph: on CUDA, replay each chunk's rollout and scoring as a captured CUDA graph
            (one launch instead of thousands; the chunk's first ``GRAPH_WARMUP`` calls of a shape
            run eagerly). Inside the graph nothing checks values on the host: the prefixes are
            checked before each replay and the raw scores' finiteness after it
            (:class:`~discriminators.base.DivergenceError`). The policy's and the scorer's weights
            must change in place (as optimizers do); another policy, scorer, generator,
            transform, special ids or precision setting captures again. A chunk that waits for
            the device, or fails to capture, warns and turns graphs off for good. Ignored off
            CUDA. It pays where chunk shapes repeat (:meth:`sequence_rewards`, a fixed batch):
            each new shape costs two eager calls and a capture, and only ``MAX_GRAPHS`` are kept.
            The oracle's scorer cannot be held (it picks the positions it scores by value, a
            wait for the device): with it, the first checked warm-up warns and all runs eagerly.
    """

    mode = "mc"

    def __init__(self, scorer: Discriminator, transform: Union[str, Transform, None] = None,
                 rollout_policy: Optional[RolloutPolicy] = None, n_rollouts: int = 16,
                 temperature: float = 1.0, chunk_rows: Optional[int] = None, cuda_graph: bool = False) -> None:
        super().__init__(scorer, transform)
        if not is_int(n_rollouts) or n_rollouts < 1:
            raise ValueError(f"n_rollouts must be an integer >= 1, got {n_rollouts!r}")
        self.rollout_policy = rollout_policy
        self.n_rollouts = n_rollouts
        self.temperature = temperature
        if chunk_rows is not None and (not is_int(chunk_rows) or chunk_rows < 1):
            raise ValueError(f"chunk_rows must be an integer >= 1 (or None), got {chunk_rows!r}")
        self.chunk_rows = chunk_rows
        self.cuda_graph = cuda_graph
        # captured chunks by shape: (graph, static inputs, values, finite flag), least recently used first
        self._graphs: OrderedDict[Tuple[int, ...], Tuple[Any, List[torch.Tensor], torch.Tensor, torch.Tensor]] = OrderedDict()
        self._seen: Dict[Tuple[int, ...], int] = {}
        self._graphs_for: Optional[tuple] = None  # the setting the graphs were captured in (_graph_setting)

    def rows_per_chunk(self) -> int:
        """Rollout rows generated and scored at once (``chunk_rows`` or its default)."""
        return self.chunk_rows or 16384

    def set_rollout_policy(self, policy: RolloutPolicy) -> None:
        self.rollout_policy = policy

    def bind(self, vocab_size: int, eos_id: Optional[int], pad_id: int) -> Reward:
        self._graphs_for = None  # new special ids: capture again
        return super().bind(vocab_size, eos_id, pad_id)

    def _graph_setting(self, generator: Optional[torch.Generator]) -> tuple:
        """What a captured chunk depends on besides its inputs and the weights' values (which
        change in place). The objects are held, so that a new one can never take a dead one's id."""
        return (self.rollout_policy, self.scorer, generator, self.transform, self.n_rollouts, self.temperature,
                self.eos_id, self.pad_id, getattr(self.scorer, "score_dtype", None),
                torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)

    def values(self, tokens: torch.Tensor, prefix_lengths: torch.Tensor,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Q(Y_{1:p}) for M prefixes: tokens (M, T), prefix_lengths (M,) -> (M,).

        One batched rollout of M·n rows and one scoring pass, in which a scorer that can
        (:func:`textgym.scorers.score_completions`, e.g. the oracle's log-likelihood) scores
        each shared prefix once instead of n times. A prefix that is already a finished
        sequence is completed by nothing and so scores f(D(Y)) exactly.
        """
        if self.rollout_policy is None:
            raise ValueError("reward='mc' needs a rollout policy: pass rollout_policy= or call set_rollout_policy()")
        step = max(1, self.rows_per_chunk() // self.n_rollouts)  # prefixes per chunk
        chunks = [(tokens[i : i + step], prefix_lengths[i : i + step]) for i in range(0, tokens.shape[0], step)]
        if not (self.cuda_graph and tokens.is_cuda):
            out = [self._chunk_values(t, p, generator)[0] for t, p in chunks]
            return torch.cat(out) if out else torch.zeros(0, device=tokens.device)
        setting = self._graph_setting(generator)
        if setting != self._graphs_for:
            self._graphs.clear()
            self._seen.clear()
            self._graphs_for = setting
        top = self.vocab_size  # the pad id is V; unbound (None): the lower end only
        lo, hi = (int(v) for v in torch.stack([tokens.min(), tokens.max()]).tolist()) if tokens.numel() else (0, 0)
        if lo < 0 or (top is not None and hi > top):  # checked once here: a replay checks nothing
            raise ValueError(f"token ids must lie in [0, {top}], got [{lo}, {hi}]")
        with torch.cuda.device(tokens.device):  # capture and replay on the data's device; once a chunk
            # could not be captured (cuda_graph turned off), the rest run eagerly
            pairs = [self._graphed_chunk_values(t, p, generator) if self.cuda_graph
                     else self._chunk_values(t, p, generator) for t, p in chunks]
        if pairs and not bool(torch.stack([ok for _, ok in pairs]).all()):
            raise DivergenceError(f"the scorer {type(self.scorer).__name__} returned non-finite scores in the MC reward")
        return torch.cat([v for v, _ in pairs]) if pairs else torch.zeros(0, device=tokens.device)

    def _chunk_values(self, tokens: torch.Tensor, prefix_lengths: torch.Tensor,
                      generator: Optional[torch.Generator]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Q of one chunk of prefixes, their n rollouts generated and scored at once -> (P,), and
        whether every raw score was finite (a 0-d bool tensor; the eager scorers raise first)."""
        n = self.n_rollouts
        rows = tokens.repeat_interleave(n, dim=0)
        plen = prefix_lengths.repeat_interleave(n)
        full = self.rollout_policy.rollout(rows, plen, temperature=self.temperature, generator=generator)  # type: ignore[union-attr]
        full, flen = finish_sequences(full.to(tokens.device), self.eos_id, self.pad_id)
        s = scorers.score_completions(self.scorer, full, flen, prefix_lengths, n).to(tokens.device)
        return self.transform(s).view(-1, n).mean(1), torch.isfinite(s).all()

    def _graphed_chunk_values(self, tokens: torch.Tensor, prefix_lengths: torch.Tensor,
                              generator: Optional[torch.Generator]) -> Tuple[torch.Tensor, torch.Tensor]:
        """:meth:`_chunk_values` replayed from a CUDA graph per chunk shape (see ``cuda_graph``).

        The first ``GRAPH_WARMUP`` calls of a shape run eagerly on a side stream (as capture
        asks of warm-up work), the last of them with any wait for the device made an error, so
        that a chunk that capture could not hold is found before capturing (it then warns and
        runs eagerly from then on); the next call captures."""
        key = tuple(tokens.shape)
        if key in self._graphs:
            self._graphs.move_to_end(key)
            graph, inputs, value, ok = self._graphs[key]
            inputs[0].copy_(tokens)
            inputs[1].copy_(prefix_lengths)
            graph.replay()
            return value.clone(), ok.clone()
        self._seen[key] = self._seen.get(key, 0) + 1
        if self._seen[key] <= GRAPH_WARMUP:
            held, out = warm_up(lambda: self._chunk_values(tokens, prefix_lengths, generator), tokens.device,
                                self._seen[key] == GRAPH_WARMUP, "the MC reward's chunk")
            if not held:
                self._stay_eager()
            return cast(Tuple[torch.Tensor, torch.Tensor], out)
        inputs = [tokens.clone(), prefix_lengths.clone()]
        graph = torch.cuda.CUDAGraph()
        if generator is not None:
            graph.register_generator_state(generator)
        try:
            with torch.cuda.graph(graph):
                value, ok = self._chunk_values(inputs[0], inputs[1], generator)
        except RuntimeError as exc:  # an operation capture cannot hold: run it eagerly from now on
            warnings.warn(f"the MC reward's chunk could not be captured as a CUDA graph ({exc}); it runs eagerly "
                          "from now on", stacklevel=3)
            self._stay_eager()
            return self._chunk_values(tokens, prefix_lengths, generator)
        self._graphs[key] = (graph, inputs, value, ok)
        while len(self._graphs) > MAX_GRAPHS:
            self._graphs.popitem(last=False)
        graph.replay()  # capture records the chunk without running it
        return value.clone(), ok.clone()

    def _stay_eager(self) -> None:
        """Turn ``cuda_graph`` off for good (a chunk waits for the device) and free the graphs."""
        self.cuda_graph = False
        self._graphs.clear()

    def step(self, tokens, lengths, done, active, generator=None):
        r = torch.zeros(tokens.shape[0], device=tokens.device)
        ongoing = (active & ~done).nonzero().squeeze(1)
        if ongoing.numel():
            r[ongoing] = self.values(tokens[ongoing], lengths[ongoing], generator)
        finished = done.nonzero().squeeze(1)
        if finished.numel():
            r[finished] = self._final(tokens[finished], lengths[finished])
        return r

    def sequence_rewards(self, tokens: torch.Tensor, lengths: torch.Tensor,
                         generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Rewards of every step of N finished sequences at once: (N, T) (0 beyond each length).

        The proper prefixes of every sequence (lengths 1..L_i - 1) × n rollouts are one batched
        generation; the finished sequences are scored directly for the last step. Prefixes at or
        past a sequence's end are not rolled out (their steps are masked): on a corpus of short
        sentences padded to a long ``T`` that is most of the N·(T-1).
        """
        N, T = tokens.shape
        p = torch.arange(1, T, device=tokens.device).repeat(N)  # prefix lengths 1..T-1, row-major (N, T-1)
        proper = p < lengths.repeat_interleave(T - 1)
        if bool(proper.all()):  # every sequence runs to T (the oracle): all N·(T-1) rows
            q = self.values(tokens.repeat_interleave(T - 1, dim=0), p, generator).view(N, T - 1)
        else:
            src = proper.nonzero().squeeze(1)
            vals = self.values(tokens[src // (T - 1)], p[src], generator)
            q = torch.zeros(N * (T - 1), dtype=vals.dtype, device=tokens.device).index_put_((src,), vals).view(N, T - 1)
        r = torch.zeros(N, T, device=tokens.device)
        r[:, : T - 1] = q
        r.scatter_(1, (lengths - 1)[:, None], self._final(tokens, lengths)[:, None])
        return r * length_mask(lengths, T)


REWARDS = {"terminal": TerminalReward, "mc": MCReward, "dense": DenseReward}


def make_reward(reward: Union[str, Reward], scorer: Optional[Discriminator] = None,
                transform: Union[str, Transform, None] = None, **kwargs: Any) -> Reward:
    """Resolve a reward mode name (``terminal``, ``mc``, ``dense``) or pass a Reward object through."""
    if isinstance(reward, Reward):
        return reward
    if reward not in REWARDS:
        raise ValueError(f"unknown reward {reward!r}; valid: {sorted(REWARDS)} or a Reward object")
    if scorer is None:
        raise ValueError(f"reward={reward!r} needs a scorer (a discriminator or the oracle's OracleScorer)")
    if reward != "mc" and kwargs:
        raise ValueError(f"options {sorted(kwargs)} apply to reward='mc' only")
    return REWARDS[reward](scorer, transform, **kwargs)


# ---------------------------------------------------------------------------- KL shaping
def kl_shaped(rewards: torch.Tensor, log_probs: torch.Tensor, ref_log_probs: torch.Tensor, beta: float) -> torch.Tensor:
    """Per-token rewards minus the KL penalty to a reference policy:

        r'_t = r_t - β · (log π(x_t | x_<t) - log π_ref(x_t | x_<t))

    rewards, log_probs, ref_log_probs: (N, T) at the sampled tokens (log_probs of the policy
    that sampled them, so the penalty's mean over samples estimates β · KL(π || π_ref) per token).
    The penalty is 0 wherever π = π_ref.
    """
    if rewards.shape != log_probs.shape or log_probs.shape != ref_log_probs.shape:
        raise ValueError(f"rewards {tuple(rewards.shape)}, log_probs {tuple(log_probs.shape)} and ref_log_probs "
                         f"{tuple(ref_log_probs.shape)} must have one shape")
    return rewards - beta * (log_probs - ref_log_probs)


class KLController:
    """β of a KL penalty: fixed, or adapted toward a target KL by the proportional controller of
    Ziegler et al. (2019), "Fine-Tuning Language Models from Human Preferences".

    With ``target`` set, after each batch of ``n`` tokens whose mean per-token KL estimate is
    ``kl``: e = clip(kl / target - 1, -0.2, 0.2) and β ← β · (1 + e · n / horizon), so β grows
    while the policy drifts further than the target and shrinks while it stays closer. (RL4LMs'
    controller uses the same error with a fixed step, β ← β · (1 + 0.1 e) per update; the
    n / horizon step here makes the rate independent of how many tokens an update holds.)

    Args:
        beta: the (initial) coefficient, >= 0.
        target: the per-token KL to hold (None: β stays fixed).
        horizon: tokens over which a 20% error changes β by about 20%.
    """

    def __init__(self, beta: float, target: Optional[float] = None, horizon: int = 10_000) -> None:
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        if target is not None and target <= 0:
            raise ValueError(f"target KL must be > 0, got {target}")
        if target is not None and beta == 0:  # the rule multiplies β: from 0 it never moves, and no penalty applies
            raise ValueError("an adaptive β (a KL target) needs a starting β > 0 (kl_beta): it scales β up or down "
                             "and cannot leave 0")
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        self.beta, self.target, self.horizon = float(beta), target, horizon

    def update(self, kl: float, n: int) -> float:
        """Adapt β after ``n`` tokens of mean KL ``kl``; returns the new β.

        Up to ``horizon`` tokens the step is the rule's, β (1 + e n / horizon); a longer batch
        takes it once per horizon, β (1 + e)^k (1 + e r / horizon) with n = k·horizon + r, so that
        β stays positive (one linear step over 5 horizons at e = -0.2 would make it 0 or negative:
        a KL bonus)."""
        if not math.isfinite(kl):  # min/max would pass a NaN through the clip and β would stay NaN
            raise ValueError(f"the KL estimate must be finite, got {kl} (the policy's or the reference's "
                             "log-probabilities are not finite)")
        if self.target is not None:
            error = min(max(kl / self.target - 1.0, -0.2), 0.2)
            whole, rest = divmod(int(n), self.horizon)
            self.beta *= (1.0 + error) ** whole * (1.0 + error * rest / self.horizon)
        return self.beta

    def state_dict(self) -> Dict[str, float]:
        return {"beta": self.beta}

    def load_state_dict(self, state: Dict[str, float]) -> None:
        self.beta = float(state["beta"])
