"""textgym's LSTM generator as a Stable-Baselines3 policy, and the KL-regularized reward.

:class:`GeneratorPolicy` is an SB3 ``ActorCriticPolicy`` whose actor *is* an
:class:`agents.generator.Generator` (the module ``train.py --agent mle`` trains), so an MLE run
is the starting point of RL fine-tuning::

    from stable_baselines3 import PPO
    from agents.sb3_policy import GeneratorPolicy, generator_policy_kwargs

    model = PPO(GeneratorPolicy, SB3VecEnv(venv), policy_kwargs=generator_policy_kwargs("runs/mle"))
    # a corpus run: vocab= refuses a generator trained on other words of the same vocabulary size
    policy_kwargs = generator_policy_kwargs("runs/mle-coco-s0", vocab=venv)

- **Actor:** π(a | x_<t) = softmax(W h_t + b), the generator's own distribution at the prefix
  that the observation holds (``(N, max_length)`` ids padded with ``vocab_size``).
- **Critic:** V(x_<t) = MLP(stop_gradient(h_t)): the value loss never moves the language model.
- **Acting (rollout collection, no gradient):** the LSTM state of every env row is cached
  between calls; a row whose new prefix is the cached one plus one token advances by one LSTM
  step, any other row (a new episode, another batch) is encoded from scratch. A rollout of L
  tokens costs O(L) LSTM steps per sequence, not O(L²). The cache is dropped whenever SB3
  switches training mode and on every call with gradient, so it never outlives the weights
  it was computed with.
- **Learning (``evaluate_actions`` on a minibatch of (prefix, action) pairs):** prefixes that
  are prefixes of a longer one in the same minibatch (the earlier steps of one episode) share one
  teacher-forced pass over the longest; the logits are computed at the minibatch's positions only.

:class:`KLRewardCallback` shapes the rewards an on-policy SB3 algorithm stores, per token:

    r'_t = r_t - β · (log π(x_t | x_<t) - log π_ref(x_t | x_<t))

with π_ref a frozen reference generator (the MLE start) and β fixed or adapted by
:class:`textgym.rewards.KLController` toward a target KL per token.
"""
from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.distributions import CategoricalDistribution, Distribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import PyTorchObs
from torch import nn
from torch.distributions import Categorical

from agents.generator import Generator
from agents.policy_head import HeadWorkspace, head_log_prob_entropy
from discriminators.base import load_weights
from textgym.rewards import KLController
from textgym.sampling import sample_logits

#: minibatches up to this many rows look for shared prefixes (a B x B comparison of fingerprints)
GROUP_LIMIT = 4096


@functools.lru_cache(maxsize=8)
def _fingerprint_weights(length: int, device: torch.device) -> torch.Tensor:
    """The fixed random weights w_s of :func:`grouped_hidden`'s prefix fingerprints, (length,) float64."""
    return torch.rand(length, generator=torch.Generator().manual_seed(0), dtype=torch.float64).to(device)


class _Categorical(CategoricalDistribution):
    """SB3's categorical distribution over V tokens computed from one ``log_softmax``.

    ``torch.distributions.Categorical`` validates its arguments and normalizes, clamps and
    re-exponentiates the (B, V) logits separately for ``log_prob`` and ``entropy``; with
    V = 5000 those elementwise passes and their gradients dominated PPO's update. Draws use
    textgym's inverse-CDF sampler on torch's global RNG (which SB3 seeds).
    """

    def proba_distribution(self, action_logits: torch.Tensor) -> _Categorical:
        self.log_p = torch.log_softmax(action_logits, -1)
        return self

    @property
    def distribution(self) -> Categorical:
        """torch's Categorical of the same probabilities, built only for code that reads it."""
        return Categorical(logits=self.log_p, validate_args=False)

    @distribution.setter
    def distribution(self, value: Any) -> None:  # SB3's constructor assigns None
        pass

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        return self.log_p.gather(1, actions.long().view(-1, 1)).squeeze(1)

    def entropy(self) -> torch.Tensor:
        return -(self.log_p.exp() * self.log_p).sum(-1)

    def sample(self) -> torch.Tensor:
        return sample_logits(self.log_p.detach())

    def mode(self) -> torch.Tensor:
        return self.log_p.argmax(-1)


class PrefixEncoder:
    """The LSTM state ``(h, c)`` of a :class:`Generator` after reading BOS and each row's prefix,
    with the incremental cache described in the module docstring (no gradient)."""

    def __init__(self, generator: Generator) -> None:
        self.generator = generator
        self._cache: Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = None

    def reset(self) -> None:
        self._cache = None

    @torch.no_grad()
    def encode(self, tokens: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """tokens (N, L) prefixes padded with ``pad_id`` beyond ``lengths`` (N,) -> (h, c), each (N, H)."""
        g = self.generator
        N, L = tokens.shape
        h = torch.empty(N, g.hidden_dim, device=tokens.device)
        c = torch.empty_like(h)
        fresh = torch.ones(N, dtype=torch.bool, device=tokens.device)
        if self._cache is not None and self._cache[0].shape == tokens.shape:
            old_tokens, old_len, old_h, old_c = self._cache
            pos = torch.arange(L, device=tokens.device)
            same = (tokens.masked_fill(pos >= old_len[:, None], g.pad_id) == old_tokens).all(1)
            step = same & (lengths == old_len + 1)
            idx = step.nonzero().squeeze(1)
            if idx.numel():
                last = tokens[idx, lengths[idx] - 1]
                _, (hs, cs) = g.lstm(g.embedding(last)[:, None], (old_h[idx][None], old_c[idx][None]))
                h[idx], c[idx] = hs[0], cs[0]
            keep = (same & (lengths == old_len)).nonzero().squeeze(1)
            h[keep], c[keep] = old_h[keep], old_c[keep]
            fresh = ~(step | (same & (lengths == old_len)))
        idx = fresh.nonzero().squeeze(1)
        if idx.numel():
            h[idx], c[idx] = self._encode_full(tokens[idx], lengths[idx])
        self._cache = (tokens.clone(), lengths.clone(), h, c)
        return h, c

    def _encode_full(self, tokens: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        g = self.generator
        inputs = torch.cat([torch.full_like(tokens[:, :1], g.bos_id), tokens], 1)  # BOS, x_1, ..., x_L
        packed = nn.utils.rnn.pack_padded_sequence(g.embedding(inputs), (lengths + 1).cpu(), batch_first=True,
                                                   enforce_sorted=False)
        _, (h, c) = g.lstm(packed)
        return h[0], c[0]


def grouped_hidden(generator: Generator, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """h at each row's prefix end, differentiable: tokens (B, L) prefixes, lengths (B,) -> (B, H).

    Row j is covered by row i when ``len_i >= len_j`` and their first ``len_j`` tokens agree;
    one teacher-forced pass over the rows that cover the others gives every row's state
    (``hidden[i, len_j]`` is the state after reading x_<len_j). Each row's prefix must be
    shorter than L (there is an action to take at it).
    """
    B, L = tokens.shape
    if B > GROUP_LIMIT:
        return generator._hidden(tokens)[torch.arange(B, device=tokens.device), lengths]
    # candidates from prefix fingerprints F[i, t] = sum_{s<t} w_s (x_is + 1) (B x B numbers, not B x B x L)...
    w = _fingerprint_weights(L, tokens.device)
    fp = torch.cat([torch.zeros(B, 1, dtype=torch.float64, device=tokens.device),
                    torch.cumsum((tokens + 1).double() * w, 1)], 1)  # (B, L + 1)
    fp_t = fp.t().contiguous()  # (L + 1, B)
    own = fp_t[lengths, torch.arange(B, device=tokens.device)]  # (B,): row j's fingerprint at len_j
    covers = (fp_t[lengths] == own[:, None]) & (lengths[None, :] >= lengths[:, None])  # (j, i): row i
    # covers row j when its first len_j tokens are row j's prefix
    rep = torch.where(covers, lengths[None, :], -1).argmax(1)  # for each j, its longest covering row
    # ... then checked exactly: a row whose candidate differs (a fingerprint collision) stands for itself
    pos = torch.arange(L, device=tokens.device)
    outside = pos[None, :] >= lengths[:, None]
    exact = (tokens[rep].masked_fill(outside, -1) == tokens.masked_fill(outside, -1)).all(1)
    rep = torch.where(exact, rep, torch.arange(B, device=tokens.device))
    reps, which = torch.unique(rep, return_inverse=True)
    hidden = generator._hidden(tokens[reps])  # (K, L, H)
    return hidden[which, lengths]


#: ActorCriticPolicy's network-building arguments, which GeneratorPolicy does not take
NOT_TAKEN = ("net_arch", "activation_fn", "features_extractor_class", "features_extractor_kwargs",
             "share_features_extractor")


class GeneratorPolicy(ActorCriticPolicy):
    """See the module docstring.

    Args:
        observation_space, action_space, lr_schedule: as SB3 passes them (Box of ids, Discrete V).
        emb_dim, hidden_dim: the generator's sizes (SeqGAN's 32 and 32 by default; a loaded
            generator's must match).
        eos_id: the data's end-of-sequence id (None on the oracle).
        generator_state: a ``Generator.state_dict()`` to start from (see :func:`generator_policy_kwargs`).
        value_hidden: hidden units of the critic's MLP.
        **kwargs: ``ActorCriticPolicy``'s (optimizer_class, optimizer_kwargs, ...); network
            architecture arguments do not apply.
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule: Any, *,
                 emb_dim: int = 32, hidden_dim: int = 32, eos_id: Optional[int] = None,
                 generator_state: Optional[Dict[str, torch.Tensor]] = None, value_hidden: int = 64, **kwargs: Any) -> None:
        if not isinstance(action_space, spaces.Discrete) or not isinstance(observation_space, spaces.Box):
            raise ValueError("GeneratorPolicy needs textgym's token env: Box observations of ids and Discrete actions")
        from textgym.sb3 import refuse_non_prefix

        refuse_non_prefix(observation_space, "GeneratorPolicy")
        unused = [k for k in NOT_TAKEN if kwargs.get(k) is not None] + \
            (["ortho_init"] if kwargs.get("ortho_init") else [])
        if unused:  # SB3's network-building arguments: this policy builds no MLP or features extractor
            raise ValueError(f"GeneratorPolicy takes no {', '.join(unused)}: its actor is the generator (emb_dim, "
                             "hidden_dim) and its critic one hidden layer of value_hidden units")
        self.gen_kwargs: Dict[str, Any] = dict(emb_dim=emb_dim, hidden_dim=hidden_dim, eos_id=eos_id)
        self.vocab_size, self.max_length = int(action_space.n), int(observation_space.shape[0])
        self.value_hidden = value_hidden
        self._initial_state = generator_state
        kwargs.setdefault("ortho_init", False)
        if kwargs.get("optimizer_class", torch.optim.Adam) is torch.optim.Adam:
            # SB3's own default (eps 1e-5) plus the fused kernel (one pass over all parameters),
            # unless the caller chose an implementation (fused and foreach exclude each other)
            given = kwargs.get("optimizer_kwargs") or {}
            fused = {} if "foreach" in given else {"fused": True}
            kwargs["optimizer_kwargs"] = {"eps": 1e-5, **fused, **given}
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)
        self.action_dist = _Categorical(int(action_space.n))

    def _build(self, lr_schedule: Any) -> None:
        # From scratch, the weights follow the seed SB3 gave torch's global RNG (a fixed seed here
        # would start every seed's run from the same generator); a loaded state draws nothing.
        seed = 0 if self._initial_state is not None else int(torch.randint(2**31 - 1, ()))
        self.generator = Generator(self.vocab_size, self.max_length, seed=seed, **self.gen_kwargs)
        if self._initial_state is not None:
            load_weights(self.generator, self._initial_state, "the given generator")
        self._initial_state = None
        self.value_head = nn.Sequential(nn.Linear(self.generator.hidden_dim, self.value_hidden), nn.Tanh(),
                                        nn.Linear(self.value_hidden, 1))
        self.encoder = PrefixEncoder(self.generator)
        self.head_workspace = HeadWorkspace()
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)  # type: ignore[call-arg]

    def _get_constructor_parameters(self) -> Dict[str, Any]:
        data = super()._get_constructor_parameters()
        for k in NOT_TAKEN:  # SB3 fills in its own network-building defaults, which __init__ refuses
            data.pop(k, None)
        data.update(self.gen_kwargs, value_hidden=self.value_hidden)  # the weights travel in the state dict
        return data

    @property
    def lstm_actor(self) -> nn.Module:
        """RecurrentPPO reads this first; without it the user got an AttributeError on an internal name."""
        raise TypeError("GeneratorPolicy is not a RecurrentActorCriticPolicy (RecurrentPPO passes LSTM states in and "
                        "out of the policy); it keeps each sequence's LSTM state itself, so use it with PPO or A2C")

    # ------------------------------------------------------------------ states
    def set_training_mode(self, mode: bool) -> None:
        """SB3 switches modes around every update: the cached states of the old weights go."""
        self.encoder.reset()
        super().set_training_mode(mode)

    def _tokens(self, obs: PyTorchObs) -> Tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(obs, torch.Tensor):
            raise TypeError("GeneratorPolicy reads textgym's token observations (a tensor of ids), not a dict")
        tokens = obs.round().long()
        return tokens, (tokens != self.generator.pad_id).sum(1)

    def _hidden(self, obs: PyTorchObs) -> torch.Tensor:
        tokens, lengths = self._tokens(obs)
        if torch.is_grad_enabled():
            self.encoder.reset()  # the weights are about to change
            return grouped_hidden(self.generator, tokens, lengths)
        return self.encoder.encode(tokens, lengths)[0]

    # ------------------------------------------------------------------ the ActorCriticPolicy interface
    def forward(self, obs: torch.Tensor, deterministic: bool = False) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self._hidden(obs)
        dist = self.action_dist.proba_distribution(self.generator.out(h))
        actions = dist.get_actions(deterministic=deterministic)
        return actions, self.value_head(h.detach()), dist.log_prob(actions)

    def evaluate_actions(self, obs: PyTorchObs,
                         actions: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        h = self._hidden(obs)
        log_prob, entropy = head_log_prob_entropy(h, self.generator.out, actions, self.head_workspace)
        return self.value_head(h.detach()), log_prob, entropy

    def get_distribution(self, obs: PyTorchObs) -> Distribution:
        return self.action_dist.proba_distribution(self.generator.out(self._hidden(obs)))

    def predict_values(self, obs: PyTorchObs) -> torch.Tensor:
        return self.value_head(self._hidden(obs).detach())

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> torch.Tensor:
        return self.get_distribution(observation).get_actions(deterministic=deterministic)


def _vocab_words(vocab: Any) -> Optional[List[str]]:
    """The words (id order) of ``vocab``: a :class:`~textgym.data.Vocab`, its word list, a data set
    (None for one without a vocabulary: the oracle benchmarks) or a textgym env (its data's)."""
    from textgym.data import TextData, Vocab
    from textgym.sb3 import unwrap_token_env

    if isinstance(vocab, Vocab):
        return list(vocab.itos)
    if isinstance(vocab, (list, tuple)) and all(isinstance(w, str) for w in vocab):
        return list(vocab)
    if not isinstance(vocab, TextData):
        try:
            vocab = unwrap_token_env(vocab).data
        except TypeError:
            raise TypeError(f"vocab must be a Vocab, a list of words, a TextData or a textgym env, got "
                            f"{type(vocab).__name__}") from None
    words = getattr(vocab, "vocab", None)
    return None if words is None else list(words.itos)


def check_generator_vocab(path: Path, theirs: Optional[List[str]], vocab: Any) -> None:
    """ValueError when the vocabulary ``theirs`` recorded in the generator file ``path`` (None: an
    oracle-benchmark generator) is not the vocabulary of ``vocab`` (see :func:`_vocab_words`)."""
    ours = _vocab_words(vocab)
    if theirs == ours:
        return
    if theirs is None or ours is None:
        kinds = ["the oracle benchmark (no vocabulary)" if w is None else f"a corpus of {len(w)} words" for w in (theirs, ours)]
        raise ValueError(f"{path} holds a generator of {kinds[0]}, but the given vocabulary is {kinds[1]}")
    n = max(len(theirs), len(ours))
    padded = [list(w) + [None] * (n - len(w)) for w in (theirs, ours)]
    differ = [i for i in range(n) if padded[0][i] != padded[1][i]]
    i = differ[0]
    raise ValueError(f"{path} holds a generator trained on another vocabulary: {len(theirs)} words there, {len(ours)} "
                     f"given, {len(differ)} ids differ (id {i} is {padded[0][i]!r} there but {padded[1][i]!r} here); "
                     "its token ids would mean other words")


def generator_policy_kwargs(source: Union[str, Path, Dict[str, Any], None] = None, *, vocab: Any = None,
                            **overrides: Any) -> Dict[str, Any]:
    """``policy_kwargs`` of :class:`GeneratorPolicy` starting from an MLE run.

    ``source``: a run folder (its ``generator.pt``, the run's last generator), a ``generator.pt``
    file, a state dict (a ``Generator.state_dict()``, a GeneratorPolicy's ``state_dict()``, or an
    agent state holding one under ``"generator"``), or None (a fresh generator). The sizes are read from the weights, and a
    generator file's end-of-sequence id from the file (with a state dict, pass ``eos_id=`` on a
    corpus, or the policy's samples are not cut at ``<eos>``); only the sizes are checked (by the
    policy, against the env's), unless ``vocab`` is given.

    ``vocab``: what the generator must have been trained on: the env the policy will act in (or
    its data set, :class:`~textgym.data.Vocab` or word list). The vocabulary recorded in the
    generator file must then be the same words in the same order (as ``train.py --init-from``
    requires), else ValueError naming the difference: a generator trained on other words of the
    same vocabulary size would otherwise load. A state dict records no vocabulary, so ``vocab``
    with a state dict is a ValueError too.
    """
    state: Optional[Dict[str, torch.Tensor]] = None
    file_kwargs: Dict[str, Any] = {}
    if isinstance(source, dict):
        if vocab is not None:
            raise ValueError("vocab= checks the vocabulary recorded in a generator file; a state dict records none "
                             "(give the run folder or its generator.pt)")
        state = source.get("generator", source)
    elif source is not None:
        from textgym.evaluate import GENERATOR_FORMAT
        from textgym.safeload import load_data_only

        path = Path(source)
        path = path / "generator.pt" if path.is_dir() else path
        if not path.is_file():
            raise ValueError(f"no generator file at {path} (give a run folder, its generator.pt, or a state dict)")
        blob = load_data_only(path, str(path))
        if not isinstance(blob, dict) or blob.get("format") != GENERATOR_FORMAT:
            raise ValueError(f"{path} is not a textgym generator file")
        if vocab is not None:
            check_generator_vocab(path, blob.get("vocab"), vocab)
        state = blob["state_dict"]
        file_kwargs = dict(blob.get("kwargs") or {})
    kwargs: Dict[str, Any] = {}
    if state is not None and "generator.embedding.weight" in state:  # a GeneratorPolicy's own state dict
        state = {k[len("generator."):]: v for k, v in state.items() if k.startswith("generator.")}
    if state is not None and "embedding.weight" not in state:
        keys = sorted(state)[:3]
        raise ValueError(f"the state dict given is not a generator's (no 'embedding.weight'; its keys begin {keys}): give "
                         "an MLE run folder, its generator.pt, a Generator.state_dict(), or a dict holding one under "
                         "'generator' (a GeneratorPolicy's: policy.generator.state_dict())")
    if state is not None:
        kwargs.update(generator_state=state, emb_dim=int(state["embedding.weight"].shape[1]),
                      hidden_dim=int(state["lstm.weight_hh_l0"].shape[1]))
    if file_kwargs.get("eos_id") is not None:  # the data's end of sequence: samples are cut there
        kwargs["eos_id"] = int(file_kwargs["eos_id"])
    kwargs.update(overrides)
    return kwargs


class KLRewardCallback(BaseCallback):
    """Subtracts β (log π(a_t | s_t) - log π_ref(a_t | s_t)) from each reward an on-policy SB3
    algorithm collects (PPO, A2C: the callback edits the step's rewards before they are stored).

    log π comes from the rollout's own ``log_probs``; π_ref is a frozen copy of a
    :class:`Generator` (cached per env row like the policy's). ``controller`` gives β and, with
    a target, adapts it after each rollout from the rollout's mean per-token KL estimate.
    Logs ``kl/kl`` (mean per-token estimate of the rollout) and ``kl/beta``.
    """

    def __init__(self, reference: Generator, controller: KLController, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.reference = copy.deepcopy(reference).eval().requires_grad_(False)
        self.controller = controller
        self.encoder = PrefixEncoder(self.reference)
        self._kl_sum, self._kl_n = 0.0, 0
        self.last_kl: Optional[float] = None
        self.last_beta: Optional[float] = None  # the β applied to the last rollout (the controller's moved on)

    def _on_step(self) -> bool:
        obs, actions, log_probs = self.locals["obs_tensor"], self.locals["actions"], self.locals["log_probs"]
        rewards: np.ndarray = self.locals["rewards"]
        ref = self.reference
        tokens = obs.round().long().to(ref.device)
        lengths = (tokens != ref.pad_id).sum(1)
        h, _ = self.encoder.encode(tokens, lengths)
        with torch.no_grad():
            ref_lp = torch.log_softmax(ref.out(h), -1).gather(1, torch.as_tensor(actions, device=ref.device).long().view(-1, 1))
        kl = (log_probs.to(ref.device).view(-1) - ref_lp.view(-1)).cpu().numpy()
        rewards -= self.controller.beta * kl.astype(rewards.dtype)  # in place: SB3 stores this array next
        self._kl_sum += float(kl.sum())
        self._kl_n += kl.size
        return True

    def _on_rollout_end(self) -> None:
        if self._kl_n:
            self.last_kl, self.last_beta = self._kl_sum / self._kl_n, self.controller.beta
            self.logger.record("kl/kl", self.last_kl)
            self.logger.record("kl/beta", self.last_beta)
            self.controller.update(self.last_kl, self._kl_n)
        self._kl_sum, self._kl_n = 0.0, 0
