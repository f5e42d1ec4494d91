"""Token-by-token generation as a Gymnasium environment, batched as tensors.

An episode is one sequence. The observation is the fixed-length ``(max_length,)`` int64 array
of the tokens generated so far, padded with ``pad_id = vocab_size`` (never a token: for the
oracle all 5000 ids are valid actions and id 0 is its start input, so padding must lie
outside). The action is the next token id, ``Discrete(vocab_size)``. An episode ends at
``<eos>`` (corpora) or when ``max_length`` tokens exist: both are ``terminated`` (never
truncated: SB3 would bootstrap a value past the end).

:class:`TokenVecEnv` holds all state as tensors on ``device`` and steps N sequences as one
batched operation (no Python loop over envs). :class:`TokenEnv` is its single-env face with
numpy observations, for ``gym.make`` and checkers.

Class-conditional episodes (the ``classes`` option): on data with class labels
(``data.num_classes = k``, :mod:`textgym.classes`) or with ``classes=k``, each episode is
conditioned on a class id in ``0 .. k-1`` and the observation grows by one entry: it is the
``(max_length + 1,)`` int64 array ``[tokens (padded as above) ..., class id]``, the class id in
the LAST entry (``Box`` with high ``vocab_size`` for the tokens and ``k - 1`` for the class), so
that the first ``max_length`` entries are the usual tokens and SB3's MLP policy consumes it
unchanged (the components that read every column as a token, ``GeneratorPolicy``,
``TokenFeaturesExtractor`` and ``DiscriminatorCallback``, refuse it).
"""
from __future__ import annotations

import math
import secrets
from typing import Any, Dict, Optional, Tuple, Union

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from discriminators.base import seeded
from textgym.data import OracleData, TextData, pack, resolve_data
from textgym.masks import length_mask, pad_after
from textgym.protocols import Discriminator, RolloutPolicy, is_int
from textgym.rewards import MCReward, Reward, Transform, make_reward
from textgym.scorers import OracleScorer


def resolve_scorer(discriminator: Union[str, Discriminator, None], data: TextData,
                   device: Union[str, torch.device], seed: Optional[int] = None) -> Discriminator:
    """``None``/``"oracle"`` (oracle data only), a registered discriminator name, or a scorer object.

    The oracle scorer uses the oracle's copy on ``device`` (:meth:`OracleData.oracle_on`): the
    shared oracle is never moved. A discriminator built by name is initialized from ``seed``
    (the global RNG is left as it was), so that envs with the same seed give the same rewards;
    without a seed it draws from the global RNG.
    """
    if discriminator is None:
        discriminator = "oracle" if isinstance(data, OracleData) else "rnn"
    if isinstance(discriminator, str):
        if discriminator == "oracle":
            if not isinstance(data, OracleData):
                raise ValueError("discriminator='oracle' needs data='oracle' (the synthetic benchmark)")
            return OracleScorer(data.oracle_on(device))
        import discriminators

        with seeded(seed):
            disc = discriminators.make(discriminator, vocab_size=data.vocab_size, max_length=data.max_length)
        return disc.to(device)
    return discriminator


def parse_autoreset_mode(mode: Any, allowed: Tuple[AutoresetMode, ...]) -> AutoresetMode:
    """An AutoresetMode from itself or its name or value (``"same_step"``, ``"SameStep"``), one
    of ``allowed``; ValueError naming the choices otherwise."""
    names = {**{m.value: m for m in allowed}, **{m.name.lower(): m for m in allowed}}
    found = names.get(mode) if isinstance(mode, str) else mode if mode in allowed else None
    if not isinstance(found, AutoresetMode):
        raise ValueError(f"autoreset_mode must be one of {sorted(names)} or an AutoresetMode of them, got {mode!r}")
    return found


def _check_seed(seed: Any) -> None:
    if not is_int(seed) or not 0 <= int(seed) < 2**64:
        raise ValueError(f"seed must be an integer in [0, 2**64), got {seed!r}")


class TokenVecEnv(VectorEnv):
    """N token-generation episodes stepped as one batched tensor operation.

    Args:
        num_envs: N.
        data: ``"oracle"`` (default), a named corpus (``"coco"``: ``textgym.data.CORPORA``), a path
            to a text file (one sentence per line) or a TextData.
        max_length: L, tokens per episode at most (default: 20 for the oracle, the data's own).
        reward: ``"terminal"``, ``"mc"``, ``"dense"`` or a :class:`~textgym.rewards.Reward`.
        discriminator: the scorer: ``"oracle"`` (the oracle's log-likelihood; default on oracle
            data), a registered discriminator name (default ``"rnn"`` on corpora), or an object.
        transform: reward shaping, a name from ``textgym.rewards.TRANSFORMS``.
        rollout_policy: the MC reward's rollout policy (default: the oracle on oracle data,
            :attr:`oracle`).
        n_rollouts: MC completions per prefix (default 16, SeqGAN's).
        device: where every tensor lives.
        seed: seeds the env's generator (MC rollouts); ``reset(seed=...)`` reseeds.
        autoreset_mode: NEXT_STEP (default), SAME_STEP or DISABLED (gymnasium semantics).
        classes: k, the number of classes of class-conditional episodes (see below). Default:
            the data's ``num_classes`` if it has one (a labelled data set), else no classes.

    ``oracle``: on oracle data, the oracle on ``device`` (``data.oracle`` itself if it lives
    there, else a per-device copy: a shared data set's oracle is never moved); None otherwise.

    Observations, rewards, terminations, truncations are torch tensors on ``device``:
    (N, L) int64, (N,) float32, (N,) bool, (N,) bool. Numpy users can wrap with
    ``gymnasium.wrappers.vector.ArrayConversion(env, env_xp=torch, target_xp=np)`` or use
    :class:`textgym.sb3.SB3VecEnv`.

    ``reset(options=...)`` accepts ``"prefix"``: an (N, P) int tensor/array or a list of N
    id lists that each episode starts from (with ``"prefix_lengths"`` (N,) for a padded
    tensor), and ``"reset_mask"``: (N,) bool, the envs to reset (the others keep their state).
    A prefix holds for the episodes this ``reset`` starts only: an autoreset starts an empty
    episode (call ``reset(options={"prefix": ..., "reset_mask": done})`` to continue from prefixes).

    Classes: with k classes (``num_classes``; None without), every episode has a class id,
    constant until it ends. ``reset`` draws one per reset env uniformly from the env's seeded
    generator, or takes them from ``options["classes"]`` ((N,) ints in ``[0, k)``, or one int
    for all); an autoreset draws the new episode's class the same way. :attr:`classes` holds
    the current (N,) int64 classes, and observations are (N, L + 1): the tokens, then the class
    id in the last column (a SAME_STEP ``final_obs`` carries the finished episode's class).
    Rewards come from the reward object as without classes; class-aware rewards read
    :attr:`classes`.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}
    #: the per-episode state tensors (what a copy with its own episodes must clone)
    STATE = ("tokens", "lengths", "_finished", "classes")

    def __init__(
        self,
        num_envs: int = 1,
        data: Union[str, TextData] = "oracle",
        max_length: Optional[int] = None,
        reward: Union[str, Reward] = "terminal",
        discriminator: Union[str, Discriminator, None] = None,
        transform: Union[str, Transform, None] = None,
        rollout_policy: Optional[RolloutPolicy] = None,
        n_rollouts: Optional[int] = None,
        device: Union[str, torch.device] = "cpu",
        seed: Optional[int] = None,
        autoreset_mode: Union[str, AutoresetMode] = AutoresetMode.NEXT_STEP,
        max_episode_steps: Optional[int] = None,
        render_mode: Optional[str] = None,
        classes: Optional[int] = None,
    ) -> None:
        if not is_int(num_envs) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        if max_length is not None and (not is_int(max_length) or max_length < 1):
            raise ValueError(f"max_length must be an integer >= 1 (tokens per episode), got {max_length!r}")
        if seed is not None:
            _check_seed(seed)
        autoreset_mode = parse_autoreset_mode(autoreset_mode, tuple(AutoresetMode))
        self.data = resolve_data(data, max_length)
        self.device = torch.device(device)
        self.num_envs = num_envs
        self.vocab_size = V = self.data.vocab_size
        self.max_length = L = self.data.max_length
        if max_episode_steps is not None and max_episode_steps < L:
            raise ValueError(f"max_episode_steps={max_episode_steps} is shorter than max_length={L}; set max_length instead")
        self.pad_id = V
        self.eos_id = self.data.eos_id
        data_classes = getattr(self.data, "num_classes", None)
        if classes is not None:
            if not is_int(classes) or classes < 1:
                raise ValueError(f"classes must be an integer >= 1 (the number of classes), got {classes!r}")
            if data_classes is not None and int(classes) != int(data_classes):
                raise ValueError(f"classes={classes} disagrees with the data, which has {data_classes} classes; "
                                 "leave classes=None to use the data's")
        #: k, the number of classes of class-conditional episodes; None without classes
        self.num_classes: Optional[int] = None
        if classes is not None:
            self.num_classes = int(classes)
        elif data_classes is not None:
            self.num_classes = int(data_classes)
        self.autoreset_mode = autoreset_mode
        self.metadata = {**self.metadata, "autoreset_mode": self.autoreset_mode}
        self.render_mode = render_mode

        # The oracle on this env's device: the data set (and its oracle) may be shared with envs
        # on other devices, so never move it in place.
        self.oracle = self.data.oracle_on(self.device) if isinstance(self.data, OracleData) else None
        named = {"discriminator": discriminator, "transform": transform, "rollout_policy": rollout_policy,
                 "n_rollouts": n_rollouts}
        if isinstance(reward, Reward):
            given = sorted(k for k, v in named.items() if v is not None)
            if given:  # they would be ignored: the object holds its own scorer, transform and rollouts
                raise ValueError(f"{', '.join(given)} configure a reward built from its name; the Reward object "
                                 f"given as reward= brings its own (set them on the object)")
            self.reward_fn = reward
        else:
            scorer = resolve_scorer(discriminator, self.data, self.device, seed)
            kw = {k: named[k] for k in ("rollout_policy", "n_rollouts") if named[k] is not None}
            if reward == "mc" and rollout_policy is None and self.oracle is not None:
                kw["rollout_policy"] = self.oracle
            self.reward_fn = make_reward(reward, scorer, transform, **kw)  # refuses MC options for other rewards
        self.reward_fn.bind(V, self.eos_id, self.pad_id)

        if self.num_classes is None:
            self.single_observation_space = spaces.Box(0, V, shape=(L,), dtype=np.int64)
        else:  # the tokens, then the class id
            high = np.full(L + 1, V, dtype=np.int64)
            high[L] = self.num_classes - 1
            self.single_observation_space = spaces.Box(np.zeros(L + 1, dtype=np.int64), high, dtype=np.int64)
        self.single_action_space = spaces.Discrete(V)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)

        self.tokens = torch.full((num_envs, L), V, dtype=torch.long, device=self.device)
        self.lengths = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self._finished = torch.zeros(num_envs, dtype=torch.bool, device=self.device)
        self._started = False
        #: (N,) int64, the class of each env's episode; None without classes
        self.classes: Optional[torch.Tensor] = None
        if self.num_classes is not None:
            self.classes = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self.rng = torch.Generator(device=self.device)
        # unseeded: 63 bits of OS entropy (what numpy's SeedSequence() draws, less its top bits)
        self.rng.manual_seed(secrets.randbits(63) if seed is None else int(seed))

    # ------------------------------------------------------------------ helpers
    @property
    def scorer(self) -> Discriminator:
        return self.reward_fn.scorer

    def set_rollout_policy(self, policy: RolloutPolicy) -> None:
        """Replace the MC reward's rollout policy (e.g. by the generator's delayed copy)."""
        if not isinstance(self.reward_fn, MCReward):
            raise ValueError(f"the env's reward is {self.reward_fn.mode!r}; only reward='mc' has a rollout policy")
        self.reward_fn.set_rollout_policy(policy)

    def _as_tensor(self, x: Any, name: str) -> torch.Tensor:
        try:
            if not torch.is_tensor(x):
                x = np.asarray(x)
                if x.dtype == object:
                    if not all(is_int(v) for v in x.flat):
                        raise ValueError("it holds values that are not numbers (None?)")
                    if any(not -(2**63) <= int(v) < 2**63 for v in x.flat):  # Python ints numpy cannot hold
                        raise ValueError("a value exceeds the int64 range")
                    x = x.astype(np.int64)
                if x.dtype.kind == "u":  # torch lacks min/max for uint16/32/64: go through int64
                    if x.size and int(x.max()) > np.iinfo(np.int64).max:
                        raise ValueError("a value exceeds the int64 range")
                    x = x.astype(np.int64)
            return torch.as_tensor(x, device=self.device)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"{name} must be an integer array, got {type(x).__name__}: {exc}") from None

    def _check_ids(self, ids: torch.Tensor, name: str) -> None:
        if ids.dtype.is_floating_point:
            if not bool(torch.isfinite(ids).all()):
                raise ValueError(f"{name} must be integer token ids, got a non-finite value (inf or nan)")
            if not torch.equal(ids, ids.round()):
                raise ValueError(f"{name} must be integer token ids, got non-integral values")
        elif ids.dtype == torch.bool or ids.is_complex():
            raise ValueError(f"{name} must be integer token ids, got dtype {ids.dtype}")
        if ids.numel():
            lo, hi = int(ids.min()), int(ids.max())
            if lo < 0 or hi >= self.vocab_size:
                bad = lo if lo < 0 else hi
                raise ValueError(
                    f"{name}: token id {bad} is out of range for a vocabulary of {self.vocab_size} tokens "
                    f"(valid ids: 0..{self.vocab_size - 1})"
                )

    def _parse_prefix(self, prefix: Any, prefix_lengths: Any) -> tuple[torch.Tensor, torch.Tensor]:
        N, L = self.num_envs, self.max_length
        if isinstance(prefix, (list, tuple)) and (len(prefix) == 0 or not np.isscalar(prefix[0])):
            if len(prefix) != N:
                raise ValueError(f"options['prefix'] holds {len(prefix)} sequences, expected one per env ({N})")
            if prefix_lengths is not None:
                raise ValueError("options['prefix_lengths'] applies to a padded (N, P) prefix, not to a list of sequences")
            if any(len(p) >= L for p in prefix):
                raise ValueError(f"a prefix must be shorter than max_length={L} (at least one token is generated)")
            prefix = [p.tolist() if torch.is_tensor(p) or isinstance(p, np.ndarray) else p for p in prefix]
            for i, p in enumerate(prefix):
                bad = [v for v in p if not is_int(v)]
                if bad:
                    raise ValueError(f"options['prefix'][{i}] must hold integer token ids, got {bad[0]!r}")
            tok, lens = pack([[int(v) for v in p] for p in prefix], L, self.pad_id)
            tok, lens = tok.to(self.device), lens.to(self.device)
        else:
            t = self._as_tensor(prefix, "options['prefix']")
            if t.dim() == 1:
                t = t[None].expand(N, -1)
            if t.dim() != 2 or t.shape[0] != N:
                raise ValueError(f"options['prefix'] must have shape (num_envs={N}, P), got {tuple(t.shape)}")
            if t.shape[1] >= L and prefix_lengths is None:
                raise ValueError(f"a prefix must be shorter than max_length={L} (at least one token is generated)")
            if prefix_lengths is None:
                lens = torch.full((N,), t.shape[1], device=self.device)
            else:
                lens = self._as_tensor(prefix_lengths, "options['prefix_lengths']").view(-1)
                self._check_integral(lens, "options['prefix_lengths']")
                lens = lens.long()
            self._check_integral(t, "options['prefix']")
            if lens.shape != (N,) or int(lens.min()) < 0 or int(lens.max()) >= L or int(lens.max()) > t.shape[1]:
                raise ValueError(f"prefix_lengths must be (N,) values in [0, min(P, max_length-1)], got {lens.tolist()}")
            tok = torch.full((N, L), self.pad_id, dtype=torch.long, device=self.device)
            P = min(t.shape[1], L)
            tok[:, :P] = pad_after(t[:, :P].long(), lens, self.pad_id)
        valid = tok[length_mask(lens, L)]
        self._check_ids(valid, "options['prefix']")
        if self.eos_id is not None and bool((valid == self.eos_id).any()):
            raise ValueError(f"options['prefix'] contains <eos> (id {self.eos_id}); a prefix must not end the sequence")
        return tok, lens.long()

    def _obs(self) -> torch.Tensor:
        """A fresh copy of the observation: (N, L) tokens, or (N, L + 1) with the classes last."""
        if self.classes is None:
            return self.tokens.clone()
        return torch.cat([self.tokens, self.classes[:, None]], 1)

    def _draw_classes(self) -> torch.Tensor:
        """(N,) uniform class ids from the env's generator."""
        assert self.num_classes is not None
        return torch.randint(self.num_classes, (self.num_envs,), generator=self.rng, device=self.device)

    def _parse_classes(self, classes: Any) -> torch.Tensor:
        """options['classes']: (N,) integer class ids (or one for all envs) in [0, k) -> (N,) int64."""
        assert self.num_classes is not None
        name = "options['classes']"
        c = self._as_tensor(classes, name)
        if c.dim() == 0:
            c = c.expand(self.num_envs)
        if c.shape != (self.num_envs,):
            raise ValueError(f"{name} must have shape ({self.num_envs},) (one class id per env), got {tuple(c.shape)}")
        self._check_integral(c, name)
        from discriminators.multiclass import check_classes  # the one class-id check

        return check_classes(c.long(), self.num_envs, self.num_classes, device=self.device, name=name)

    def _check_integral(self, x: torch.Tensor, name: str) -> None:
        """ValueError for bool, non-finite or non-integral values (which ``.long()`` would coerce)."""
        if x.dtype == torch.bool or x.is_complex():
            raise ValueError(f"{name} must be integers, got dtype {x.dtype}")
        if x.dtype.is_floating_point and not (bool(torch.isfinite(x).all()) and torch.equal(x, x.round())):
            raise ValueError(f"{name} must be integers, got {x.flatten()[:8].tolist()}")

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
        """Start new episodes. Returns ``(obs (N, L) int64 tensor, infos dict)`` (``(N, L + 1)`` with classes).

        A ``seed`` reseeds the env's generator and a scorer that draws its own numbers (the
        ``"random"`` control's ``reseed``), so the same seed and actions give the same rewards.
        """
        if seed is not None:
            _check_seed(seed)
            seed = int(seed)  # a numpy integer too: gymnasium's reset takes Python ints only
        super().reset(seed=seed)
        if seed is not None:
            self.rng.manual_seed(seed)
            reseed = getattr(getattr(self.reward_fn, "scorer", None), "reseed", None)
            if callable(reseed):
                reseed(int(seed))
        options = options or {}
        if self.num_classes is None and "classes" in options:
            raise ValueError("options['classes'] was given, but this env has no classes: build it with "
                             "classes=k or on labelled data (textgym.classes)")
        valid = ["prefix", "prefix_lengths", "reset_mask", *(["classes"] if self.num_classes is not None else [])]
        unknown = set(options) - set(valid)
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; valid: {', '.join(valid)}")
        mask = options.get("reset_mask")
        if mask is None:
            mask = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        else:
            m = self._as_tensor(mask, "options['reset_mask']")
            if m.numel() != self.num_envs:
                raise ValueError(f"options['reset_mask'] must have shape ({self.num_envs},), got {tuple(m.shape)}")
            m = m.reshape(-1)
            if m.dtype != torch.bool and not (bool(((m == 0) | (m == 1)).all()) and not m.is_complex()):
                raise ValueError(f"options['reset_mask'] must be booleans (or 0/1), got {m.tolist()}")
            mask = m.bool()
        if options.get("prefix_lengths") is not None and options.get("prefix") is None:
            raise ValueError("options['prefix_lengths'] was given without options['prefix'] (the padded prefixes)")
        if "prefix" in options and options["prefix"] is not None:
            tok, lens = self._parse_prefix(options["prefix"], options.get("prefix_lengths"))
        else:
            tok = torch.full_like(self.tokens, self.pad_id)
            lens = torch.zeros_like(self.lengths)
        if self.classes is not None:
            given = options.get("classes")
            new = self._draw_classes() if given is None else self._parse_classes(given)
            self.classes = torch.where(mask, new, self.classes)
        self.tokens = torch.where(mask[:, None], tok, self.tokens)
        self.lengths = torch.where(mask, lens, self.lengths)
        self._finished = self._finished & ~mask
        self._started = True
        return self._obs(), {}

    def step(self, actions: Any):
        """Append one token per env. Returns ``(obs, rewards, terminations, truncations, infos)``."""
        if not self._started:
            raise RuntimeError("step() was called before reset(); call reset() first")
        a = self._as_tensor(actions, "actions")
        if a.shape != (self.num_envs,):
            raise ValueError(f"actions must have shape ({self.num_envs},) (one token id per env), got {tuple(a.shape)}")
        self._check_ids(a, "actions")
        a = a.long()
        N, L = self.num_envs, self.max_length
        infos: dict = {}

        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            resetting = self._finished
            if bool(resetting.any()):
                self.tokens[resetting] = self.pad_id
                self.lengths[resetting] = 0
                if self.classes is not None:
                    self.classes = torch.where(resetting, self._draw_classes(), self.classes)
            active = ~resetting
        else:
            if self.autoreset_mode == AutoresetMode.DISABLED and bool(self._finished.any()):
                idx = self._finished.nonzero().squeeze(1).tolist()
                raise RuntimeError(
                    f"envs {idx[:10]} finished their episode; with autoreset disabled call "
                    "reset(options={'reset_mask': mask}) before stepping them"
                )
            active = torch.ones(N, dtype=torch.bool, device=self.device)

        rows = torch.arange(N, device=self.device)
        pos = self.lengths.clamp(max=L - 1)
        self.tokens[rows, pos] = torch.where(active, a, self.tokens[rows, pos])
        self.lengths = self.lengths + active.long()
        done = active & (self.lengths >= L)
        if self.eos_id is not None:
            done |= active & (a == self.eos_id)
        rewards = self.reward_fn.step(self.tokens, self.lengths, done, active, self.rng).float()
        terminated = done.clone()
        truncated = torch.zeros(N, dtype=torch.bool, device=self.device)

        if self.autoreset_mode == AutoresetMode.SAME_STEP:
            infos["final_obs"], infos["final_info"] = self._obs(), {}  # a step has no per-env infos
            infos["_final_obs"] = infos["_final_info"] = done.clone()  # one mask for both (one copy per step)
            self.tokens[done] = self.pad_id
            self.lengths[done] = 0
            if self.classes is not None and bool(done.any()):
                self.classes = torch.where(done, self._draw_classes(), self.classes)
            self._finished = torch.zeros_like(done)
        else:
            self._finished = done
        return self._obs(), rewards, terminated, truncated, infos

    def action_masks(self) -> torch.Tensor:
        """(N, V) bool: the actions allowed now; ``<eos>`` is refused as a first token (empty sentence)."""
        mask = torch.ones(self.num_envs, self.vocab_size, dtype=torch.bool, device=self.device)
        if self.eos_id is not None:
            mask[:, self.eos_id] = self.lengths > 0
        return mask

    def close_extras(self, **kwargs: Any) -> None:
        pass


class UnsupportedRenderMode(ValueError, TypeError):
    """A render mode the env does not have. Also a TypeError: SB3's ``make_vec_env`` asks for
    ``render_mode="rgb_array"`` and retries without it only on a TypeError."""


def array_or_tensor(x: Any) -> Union[np.ndarray, torch.Tensor]:
    """A tensor as it is (on its device: ``np.asarray`` refuses a CUDA tensor), anything else as a
    numpy array: what a single env hands its vector env, which takes either."""
    return x if torch.is_tensor(x) else np.asarray(x)


def _single(kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """A single env's keyword arguments for its vector env (gym.make's ``max_episode_steps`` dropped);
    ValueError for ``autoreset_mode``, which only vector envs have (it was a TypeError, "multiple values")."""
    if "autoreset_mode" in kwargs:
        raise ValueError("autoreset_mode applies to the vector envs (gym.make_vec); a single env's episode ends and "
                         "waits for reset()")
    return {k: v for k, v in kwargs.items() if k != "max_episode_steps"}


class TokenEnv(gym.Env):
    """The single-env face of :class:`TokenVecEnv` (numpy observations, Python rewards).

    Takes the same keyword arguments (without ``num_envs``). ``observation_space`` is
    ``Box(0, vocab_size, (max_length,), int64)`` with ``vocab_size`` as the padding id
    (``(max_length + 1,)``, the class id last, with classes: see :class:`TokenVecEnv`);
    ``action_space`` is ``Discrete(vocab_size)``.
    """

    metadata = {"render_modes": ["ansi"]}

    def __init__(self, render_mode: Optional[str] = None, **kwargs: Any) -> None:
        self._wrap(render_mode, TokenVecEnv(num_envs=1, autoreset_mode=AutoresetMode.DISABLED, **_single(kwargs)))

    def _wrap(self, render_mode: Optional[str], venv: Any) -> None:
        """Hold the one-env ``venv`` and take its spaces (single-env faces of vector envs share this)."""
        if render_mode not in (None, "ansi"):
            raise UnsupportedRenderMode(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.render_mode = render_mode
        self.venv = venv
        self.observation_space = venv.single_observation_space
        self.action_space = venv.single_action_space

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
        super().reset(seed=seed if seed is None or not is_int(seed) else int(seed))  # a numpy integer as a Python one
        options = dict(options or {})
        prefix = options.get("prefix")
        if prefix is not None:  # one sequence: the one row of a padded (1, P) prefix (prefix_lengths still apply)
            options["prefix"] = array_or_tensor(prefix).reshape(1, -1)
        obs, _ = self.venv.reset(seed=seed, options=options)
        return obs[0].cpu().numpy().copy(), {}

    def step(self, action: Any):
        a = array_or_tensor(action)
        if math.prod(a.shape) != 1:
            raise ValueError(f"action must be one token id, got an array of shape {tuple(a.shape)}")
        if bool(self.venv._finished[0]):
            raise RuntimeError("the episode has ended; call reset() before stepping again")
        obs, r, term, trunc, _ = self.venv.step(a.reshape(1))
        return obs[0].cpu().numpy().copy(), float(r[0]), bool(term[0]), bool(trunc[0]), {}

    def render(self) -> Optional[str]:
        if self.render_mode == "ansi":
            return self.venv.data.decode(self.venv.tokens[0, : int(self.venv.lengths[0])].tolist())
        return None
