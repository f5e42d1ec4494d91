"""The Stable-Baselines3 bridge: a VecEnv over :class:`TokenVecEnv`, a token features
extractor, and the callback that retrains the discriminator during RL training.

```python
venv = gym.make_vec("textgym/TokenGen-v0", num_envs=64)
model = PPO("MlpPolicy", SB3VecEnv(venv), policy_kwargs=dict(features_extractor_class=TokenFeaturesExtractor))
```

Tensors stay on the env's device up to this boundary; numpy conversion happens here, once
per step.
"""
from __future__ import annotations

import copy
import inspect
import time
import warnings
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from gymnasium import spaces
from gymnasium import wrappers as _wrappers
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers import OrderEnforcing, PassiveEnvChecker, TimeLimit
from gymnasium.wrappers import vector as _vector_wrappers
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import VecEnv
from torch import nn

from textgym.env import TokenEnv, TokenVecEnv
from textgym.infill import InfillBox, InfillVecEnv
from textgym.protocols import RolloutPolicy
from textgym.rewards import MCReward
from textgym.sampling import generator_on, sample_logits


def _layers(env: Any) -> List[Any]:
    """``env``, the env it wraps, and so on down to the textgym vector env (:class:`TokenVecEnv`
    or :class:`~textgym.infill.InfillVecEnv`), which comes last."""
    layers = [env]
    while not isinstance(layers[-1], (TokenVecEnv, InfillVecEnv)):
        seen = layers[-1]
        inner = getattr(seen, "token_env", None) or getattr(seen, "venv", None) or getattr(seen, "env", None)
        if inner is None or inner is seen:
            raise TypeError("expected a textgym TokenVecEnv or InfillVecEnv (e.g. from "
                            f"gym.make_vec('textgym/TokenGen-v0')), got {type(env).__name__}")
        layers.append(inner)
    return layers


def unwrap_token_env(env: Any) -> Any:
    """The textgym vector env (:class:`TokenVecEnv` or :class:`~textgym.infill.InfillVecEnv`) inside
    ``env`` (the env itself, a gymnasium or SB3 wrapper of one, or a SB3VecEnv)."""
    return _layers(env)[-1]


def _array_conversions() -> tuple:
    """gymnasium's array-conversion wrappers (single and vector) that this version has:
    ``ArrayConversion`` from 1.2 on, ``NumpyToTorch`` and ``TorchToNumpy`` before (the jax ones
    would import jax)."""
    found = []
    for module in (_wrappers, _vector_wrappers):
        for name in ("ArrayConversion", "NumpyToTorch", "TorchToNumpy"):
            try:
                found.append(getattr(module, name))
            except Exception:  # absent in this version
                pass
    return tuple(found)


def _refuse_skipped_wrappers(env: Any) -> Any:
    """The textgym vector env inside ``env`` for :class:`SB3VecEnv`, which steps it directly: a
    wrapper on the way that changes rewards, observations or episodes would be skipped, so it is
    refused. Let through: array conversions and gymnasium's call-order checks (SB3VecEnv converts
    itself), the single-env faces of textgym's envs, and a time limit that never cuts an episode."""
    layers = _layers(env)
    inner = layers[-1]
    for layer in layers[:-1]:
        if isinstance(layer, (*_array_conversions(), OrderEnforcing, PassiveEnvChecker, TokenEnv, SB3VecEnv)):
            continue
        if isinstance(layer, TimeLimit) and layer._max_episode_steps >= inner.max_length:
            continue
        raise ValueError(f"SB3VecEnv steps the textgym env inside {type(env).__name__} directly, so its wrapper "
                         f"{type(layer).__name__} would have no effect; give SB3VecEnv the env itself and wrap the "
                         "SB3VecEnv instead (SB3's VecEnvWrapper classes, e.g. VecNormalize; max_length for shorter "
                         "episodes)")
    return inner


def same_step_view(env: Any) -> Any:
    """A same-step-autoreset copy of ``env`` sharing its data and reward, with its own state
    (the tensors its class lists in ``STATE``)."""
    view = copy.copy(env)
    view.autoreset_mode = AutoresetMode.SAME_STEP
    view.metadata = {**env.metadata, "autoreset_mode": AutoresetMode.SAME_STEP}
    for name in env.STATE:
        value = getattr(env, name)
        setattr(view, name, None if value is None else value.clone())
    view.rng = torch.Generator(device=env.device)
    view.rng.set_state(env.rng.get_state())
    return view


def refuse_non_prefix(space: Any, what: str) -> None:
    """ValueError when ``space`` holds observations that are not a token prefix, which ``what``
    reads every column of as one: an in-filling env's (:class:`~textgym.infill.InfillBox`) or a
    class-conditional env's (the tokens, then the class id, whose bound differs)."""
    if isinstance(space, InfillBox):
        raise ValueError(f"{what} reads observations as token prefixes, but these are an in-filling env's (the "
                         "context with its blanks, then the fill); use SB3's MLP policy on the raw observations")
    high = np.asarray(getattr(space, "high", [])).reshape(-1)
    if high.size > 1 and high[-1] != high[0]:
        raise ValueError(f"{what} reads observations as token prefixes, but these end with a class id (a "
                         "class-conditional env); use SB3's MLP policy on the raw observations, or an env without classes")


class SB3VecEnv(VecEnv):
    """Stable-Baselines3 ``VecEnv`` over a :class:`TokenVecEnv` (or an in-filling
    :class:`~textgym.infill.InfillVecEnv`, whose flat observations SB3's MLP policies read).

    SB3 semantics: same-step autoreset, the finished sequence in
    ``infos[i]["terminal_observation"]``, episode statistics in ``infos[i]["episode"] = {"r",
    "l", "t"}`` (``l``: the episode's steps; do not add a VecMonitor as well), ``dones = terminated | truncated``, and
    ``action_masks()`` for MaskablePPO. Observations are ``(N, max_length)`` int64 numpy arrays
    padded with ``vocab_size``.

    The env given is never modified: an env already in same-step mode is used as it is; any
    other gets a same-step *view* (``self.token_env``), a shallow copy that shares its data,
    reward and discriminator but has its own sequences and random stream (a copy of the env's
    current one), so other holders of the env see neither a mode change nor these steps.
    """

    def __init__(self, vector_env: Any) -> None:
        env = _refuse_skipped_wrappers(vector_env)
        if env.autoreset_mode != AutoresetMode.SAME_STEP:
            env = same_step_view(env)
        self.token_env = env
        self.render_mode = None
        self._actions: Optional[np.ndarray] = None
        self._returns = torch.zeros(env.num_envs, device=env.device)
        self._steps = torch.zeros(env.num_envs, dtype=torch.long, device=env.device)
        self._t0 = time.time()
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)

    # ------------------------------------------------------------------ stepping
    def reset(self) -> np.ndarray:
        seed = self._seeds[0]
        obs, _ = self.token_env.reset(seed=seed, options=self._options[0] or None)
        self._reset_seeds()
        self._reset_options()
        self._returns.zero_()
        self._steps.zero_()
        return obs.cpu().numpy()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async(actions)")
        env = self.token_env
        obs, rew, term, trunc, info = env.step(np.asarray(self._actions).reshape(-1))
        self._actions = None
        done = term | trunc
        self._returns += rew
        self._steps += 1
        infos: List[Dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if bool(done.any()):
            idx = done.nonzero().squeeze(1)
            final = info["final_obs"][idx].cpu().numpy()
            rets = self._returns[idx].tolist()
            lens = self._steps[idx].tolist()
            t = round(time.time() - self._t0, 6)
            for k, i in enumerate(idx.tolist()):
                infos[i] = {
                    "terminal_observation": final[k],
                    "episode": {"r": rets[k], "l": lens[k], "t": t},
                    "TimeLimit.truncated": bool(trunc[i]),
                }
            self._returns[idx] = 0.0
            self._steps[idx] = 0
        return obs.cpu().numpy(), rew.cpu().numpy(), done.cpu().numpy(), infos

    def action_masks(self) -> np.ndarray:
        """(N, V) bool: the actions allowed now (MaskablePPO calls this)."""
        return self.token_env.action_masks().cpu().numpy()

    def close(self) -> None:
        self.token_env.close()

    # ------------------------------------------------------------------ attributes
    def _targets(self, indices) -> list:
        return list(self._get_indices(indices))

    def get_attr(self, attr_name: str, indices=None) -> List[Any]:
        value = getattr(self, attr_name) if attr_name == "render_mode" else getattr(self.token_env, attr_name)
        return [value for _ in self._targets(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self.token_env, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> List[Any]:
        """The envs share one batched env, so a method runs once for all of them and each target
        gets its result; ``reset`` resets only the targets (a ``reset_mask``), whose episode
        statistics restart, and returns each one's ``(obs, info)``."""
        targets = self._targets(indices)
        if method_name == "action_masks":
            masks = self.action_masks()
            return [masks[i] for i in targets]
        if method_name == "reset":
            options = dict(method_kwargs.pop("options", None) or {})
            if "reset_mask" in options:
                raise ValueError("env_method('reset') resets the envs given by indices; pass indices, not a reset_mask")
            mask = torch.zeros(self.num_envs, dtype=torch.bool, device=self.token_env.device)
            mask[targets] = True
            obs, _ = self.token_env.reset(*method_args, options={**options, "reset_mask": mask}, **method_kwargs)
            self._returns[mask] = 0
            self._steps[mask] = 0
            return [(obs[i].cpu().numpy(), {}) for i in targets]
        result = getattr(self.token_env, method_name)(*method_args, **method_kwargs)
        return [result for _ in targets]

    def env_is_wrapped(self, wrapper_class: type, indices=None) -> List[bool]:
        """True for SB3's ``Monitor`` only: the env reports its episodes as a Monitor does
        (``info["episode"]``), which ``evaluate_policy`` and ``EvalCallback`` then read instead of
        warning that returns may be altered."""
        from stable_baselines3.common.monitor import Monitor

        return [wrapper_class is Monitor for _ in self._targets(indices)]


class TokenFeaturesExtractor(BaseFeaturesExtractor):
    """Embedding + GRU encoder of the token prefix, for SB3 policies.

    SB3 casts Box observations to float; this casts back to int64. Input ``(B, L)`` ids
    padded with ``pad_id = observation_space.high`` -> ``(B, features_dim)``: the GRU state after
    the last generated token (after a learned start token when nothing is generated yet).
    """

    def __init__(self, observation_space: spaces.Box, features_dim: int = 64, embed_dim: int = 32) -> None:
        refuse_non_prefix(observation_space, "TokenFeaturesExtractor")
        super().__init__(observation_space, features_dim)
        self.pad_id = int(np.asarray(observation_space.high).max())
        self.start_id = self.pad_id + 1
        self.embedding = nn.Embedding(self.pad_id + 2, embed_dim, padding_idx=self.pad_id)
        self.gru = nn.GRU(embed_dim, features_dim, batch_first=True)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        ids = observations.round().long()
        B = ids.shape[0]
        lengths = (ids != self.pad_id).sum(1)
        start = torch.full((B, 1), self.start_id, dtype=torch.long, device=ids.device)
        out, _ = self.gru(self.embedding(torch.cat([start, ids], 1)))  # (B, L+1, F)
        return out[torch.arange(B, device=ids.device), lengths]


class SB3PolicyGenerator:
    """A Stable-Baselines3 policy seen as a generator: the SequenceModel and RolloutPolicy
    protocols (``sample``, ``log_probs``, ``rollout``) on top of ``policy.get_distribution``.

    Each generation step runs the policy on the whole padded prefix (its features extractor
    re-encodes it), as SB3 does when acting.
    """

    def __init__(self, policy: Any, vocab_size: int, max_length: int, eos_id: Optional[int]) -> None:
        get = getattr(policy, "get_distribution", None)
        required = [] if get is None else [p for p in inspect.signature(get).parameters.values()
                                           if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if len(required) != 1:  # DQN's has none; RecurrentPPO's also needs the LSTM states
            raise ValueError(f"{type(policy).__name__} gives no token distribution from the prefix alone "
                             "(get_distribution(obs)), so it cannot complete an MC reward's prefixes; use PPO, A2C or "
                             "MaskablePPO, or keep the env's rollout policy (DiscriminatorCallback(update_rollout_policy="
                             "False) and env.set_rollout_policy(generator))")
        self.policy = policy
        self.vocab_size, self.max_length, self.eos_id, self.pad_id = vocab_size, max_length, eos_id, vocab_size

    def parameters(self):
        return self.policy.parameters()

    @property
    def training(self) -> bool:
        return self.policy.training

    def eval(self) -> SB3PolicyGenerator:
        self.policy.set_training_mode(False)
        return self

    def train(self, mode: bool = True) -> SB3PolicyGenerator:
        self.policy.set_training_mode(mode)
        return self

    def _logits(self, obs: torch.Tensor) -> torch.Tensor:
        logits = self.policy.get_distribution(obs.float()).distribution.logits
        if self.eos_id is not None:  # the env's action mask: no <eos> as the first token
            first = (obs == self.pad_id).all(1)
            logits = logits.clone()
            logits[first, self.eos_id] = -float("inf")
        return logits

    @torch.no_grad()
    def rollout(self, tokens: torch.Tensor, prefix_lengths: torch.Tensor, *, temperature: float = 1.0,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
        device = self.policy.device
        tokens, prefix_lengths = tokens.to(device).clone(), prefix_lengths.to(device)
        generator = generator_on(generator, device)
        T = tokens.shape[1]
        pos = torch.arange(T, device=device)
        for t in range(T):
            free = (prefix_lengths <= t).nonzero().squeeze(1)
            if free.numel() == 0:
                continue
            obs = tokens[free].masked_fill(pos >= t, self.pad_id)
            tokens[free, t] = sample_logits(self._logits(obs), temperature, generator)
        return tokens

    def sample(self, n: int, *, temperature: float = 1.0, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        empty = torch.full((n, self.max_length), self.pad_id, dtype=torch.long, device=self.policy.device)
        return self.rollout(empty, torch.zeros(n, dtype=torch.long), temperature=temperature, generator=generator)

    @torch.no_grad()
    def log_probs(self, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """(N, T) -> (N, T) log p(x_t | x_<t): all N·T prefixes in one policy pass."""
        tokens = tokens.to(self.policy.device)
        N, T = tokens.shape
        pos = torch.arange(T, device=tokens.device)
        prefixes = tokens[:, None, :].expand(N, T, T).masked_fill(pos[None, None, :] >= pos[None, :, None], self.pad_id)
        logits = self._logits(prefixes.reshape(N * T, T)) / temperature
        lp = torch.log_softmax(logits, -1).gather(1, tokens.reshape(-1, 1))
        return lp.view(N, T)


class DiscriminatorCallback(BaseCallback):
    """Retrains the env's discriminator during Stable-Baselines3 training; no wiring needed.

    ``DiscriminatorCallback()`` takes, when training starts, the discriminator of the env's
    reward, a ``discriminators.DiscriminatorTrainer`` with its defaults and the env's real
    training sequences; each can be given instead. During each rollout the callback collects
    the sequences that finish (``terminal_observation``); every ``train_every`` rollouts it

    1. scores them (fresh samples of the current policy, never trained on) against
       ``heldout`` real sequences the discriminator never trains on (the data's test set, else
       the last training sequences, then kept out of training): ``heldout_acc`` (balanced
       accuracy, 0.5 = no information) and ``heldout_loss``;
    2. trains the discriminator on them (fake) against as many real sequences;

    and logs both under ``discriminator/`` (to TensorBoard when SB3 logs there). The env's
    reward holds the same discriminator object, so the next rollout's rewards change. With an
    MC reward, the SB3 policy becomes the reward's rollout policy when training starts and after each retraining
    (``update_rollout_policy``): its ``generator`` when it has one (``GeneratorPolicy``), else the
    policy through :class:`SB3PolicyGenerator`.

    Args:
        discriminator: the model to train (default: the env's; it must be the one the reward uses
            for the rewards to change).
        trainer: a ``DiscriminatorTrainer`` (``step(real, real_len, fake, fake_len, k)``; default:
            one for ``discriminator`` with the trainer's defaults, seeded by ``seed``).
        real_tokens, real_lengths: (M, T) real sequences padded with the pad id, (M,) (default:
            the env data's training set, less the held-out ones).
        train_every: retrain every this many rollouts.
        k: the trainer's ``k`` per retraining.
        min_fake: skip retraining while fewer finished sequences were collected.
        heldout: held-out real sequences for ``heldout_acc`` (0: no held-out evaluation).
        seed: seeds the default trainer and the draw of real sequences.
    """

    def __init__(self, discriminator: Any = None, *, trainer: Any = None, real_tokens: Optional[torch.Tensor] = None,
                 real_lengths: Optional[torch.Tensor] = None, train_every: int = 1, k: int = 1, min_fake: int = 1,
                 update_rollout_policy: bool = True, heldout: int = 1000, seed: int = 0, verbose: int = 0) -> None:
        super().__init__(verbose)
        if train_every < 1:
            raise ValueError(f"train_every must be >= 1, got {train_every}")
        if (real_tokens is None) != (real_lengths is None):
            raise ValueError("give real_tokens and real_lengths together (or neither: the env's training data)")
        if heldout < 0:
            raise ValueError(f"heldout must be >= 0, got {heldout}")
        self.discriminator, self.trainer = discriminator, trainer
        self.real_tokens, self.real_lengths = real_tokens, real_lengths
        self.train_every, self.k, self.min_fake, self.n_heldout = train_every, k, min_fake, heldout
        self.update_rollout_policy = update_rollout_policy
        self.seed = seed
        self.rng = torch.Generator().manual_seed(seed)
        self.heldout_real: Optional[tuple] = None
        self.fake: List[np.ndarray] = []
        self.rollouts = 0
        self.last_stats: Dict[str, float] = {}

    def _init_callback(self) -> None:
        self.setup(unwrap_token_env(self.training_env))

    def _on_training_start(self) -> None:
        self._set_rollout_policy(unwrap_token_env(self.training_env))

    def setup(self, env: TokenVecEnv) -> None:
        """Fill in the defaults from ``env`` (called when training starts; idempotent)."""
        if isinstance(env, InfillVecEnv):  # its discriminator scores a fill given its context, not a sequence
            raise ValueError("DiscriminatorCallback trains a discriminator of whole sequences; an in-filling env's "
                             "context-conditioned discriminator is trained by train.py --agent maskgan --task infill")
        refuse_non_prefix(env.single_observation_space, "DiscriminatorCallback")
        if self.discriminator is None:
            self.discriminator = self.trainer.discriminator if self.trainer is not None else env.scorer
        if not isinstance(self.discriminator, nn.Module):
            raise ValueError(f"the env's reward scores with {type(self.discriminator).__name__}, which is not a "
                             "trainable discriminator; make the env with a discriminators registry name or model")
        if self.discriminator is not env.scorer:
            warnings.warn("DiscriminatorCallback trains a discriminator that is not the env's: the rewards will not "
                          "change", RuntimeWarning, stacklevel=2)
        if self.trainer is None:
            import discriminators

            self.trainer = discriminators.DiscriminatorTrainer(self.discriminator, seed=self.seed)
        if self.real_tokens is None or self.heldout_real is None:
            data = env.data
            test = getattr(data, "test", None)
            train_t, train_l = data.train, data.train_lengths
            if self.n_heldout and test is not None and len(test):
                n = min(self.n_heldout, len(test))
                assert data.test_lengths is not None
                self.heldout_real = (test[:n], data.test_lengths[:n])
            elif self.n_heldout and self.real_tokens is None and len(train_t) >= 5:  # a fifth of at least one
                n = min(self.n_heldout, len(train_t) // 5)
                self.heldout_real = (train_t[len(train_t) - n :], train_l[len(train_t) - n :])
                train_t, train_l = train_t[: len(train_t) - n], train_l[: len(train_t) - n]
            if self.real_tokens is None:
                self.real_tokens, self.real_lengths = train_t, train_l

    def _on_step(self) -> bool:
        for done, info in zip(self.locals["dones"], self.locals["infos"], strict=True):
            if done and "terminal_observation" in info:
                self.fake.append(info["terminal_observation"])
        return True

    def _on_rollout_end(self) -> None:
        self.rollouts += 1
        if self.rollouts % self.train_every or len(self.fake) < self.min_fake:
            return
        env = unwrap_token_env(self.training_env)
        assert self.real_tokens is not None and self.real_lengths is not None
        fake = torch.as_tensor(np.stack(self.fake), device=env.device)
        self.fake = []
        fake_len = (fake != env.pad_id).sum(1)
        stats: Dict[str, float] = {}
        if self.heldout_real is not None:
            from discriminators import evaluate

            real, real_len = self.heldout_real
            out = evaluate(self.discriminator, real.to(env.device), real_len.to(env.device), fake, fake_len)
            stats.update(heldout_acc=float(out["balanced_acc"]), heldout_loss=float(out["loss"]))
        idx = torch.randint(len(self.real_tokens), (len(fake),), generator=self.rng)
        trained = self.trainer.step(self.real_tokens[idx].to(env.device), self.real_lengths[idx].to(env.device),
                                    fake, fake_len, k=self.k)
        stats.update({k: float(v) for k, v in dict(trained).items() if isinstance(v, (int, float)) or torch.is_tensor(v)})
        self.last_stats = stats
        for k, v in stats.items():
            self.logger.record(f"discriminator/{k}", v)
        self._set_rollout_policy(env)

    def _set_rollout_policy(self, env: TokenVecEnv) -> None:
        """With an MC reward (and ``update_rollout_policy``), the SB3 policy completes the prefixes."""
        reward = env.reward_fn
        if self.update_rollout_policy and isinstance(reward, MCReward):
            # a policy that is a generator (GeneratorPolicy) completes prefixes itself, in one batched pass
            rollout = getattr(self.model.policy, "generator", None)
            if not isinstance(rollout, RolloutPolicy):
                rollout = SB3PolicyGenerator(self.model.policy, env.vocab_size, env.max_length, env.eos_id)
            reward.set_rollout_policy(rollout)
