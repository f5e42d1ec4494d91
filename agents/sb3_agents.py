"""Stable-Baselines3 algorithms (``ppo``, ``a2c``) as agents of ``train.py``.

The policy acts in :class:`textgym.TokenVecEnv` through :class:`textgym.sb3.SB3VecEnv`. With
``policy="generator"`` (the default) it is :class:`agents.sb3_policy.GeneratorPolicy`, textgym's
LSTM generator with a value head, which ``--init-from`` loads from an MLE run; with
``policy="gru"`` it is SB3's MLP policy over :class:`textgym.sb3.TokenFeaturesExtractor`. A
learned discriminator is retrained during training by :class:`textgym.sb3.DiscriminatorCallback`
(unless ``discriminator="oracle"``: the oracle's log-likelihood as the reward, or a
no-information control). ``kl_beta > 0`` subtracts β · (log π - log π_ref) from every reward
(:class:`agents.sb3_policy.KLRewardCallback`), π_ref being the generator at the start (the warm
start's); ``kl_target`` adapts β toward a per-token KL. One iteration is one SB3 rollout of
``n_steps`` × ``num_envs`` tokens followed by SB3's update. The fields are :class:`SB3Config`'s;
the PPO and A2C presets use SB3's own defaults for the algorithm except the rollout (``n_steps``:
one episode, ``max_length``) and PPO's minibatch (the largest divisor of the rollout up to 256).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Dict, List, Literal, Optional, Sequence

import numpy as np
import torch

from agents.adversarial import check_discriminator, check_transform
from agents.base import Agent
from agents.config import SB3, SIZE, ConfigError, KLConfig, at_least, param, positive, replace
from discriminators.base import load_optimizer_state, load_weights
from textgym.classes import LabelledCorpus
from textgym.data import OracleData, TextData, resolve_data

#: SB3 arguments the agent sets itself, from the fields named (None: from the run or the agent)
SET_BY_FIELDS = {"n_steps": "n_steps", "learning_rate": "learning_rate", "seed": None, "device": None,
                 "policy": "policy", "env": None}
#: policy_kwargs the agent sets from its fields
POLICY_SET_BY_FIELDS = {"emb_dim": "emb_dim", "hidden_dim": "hidden_dim", "eos_id": None,
                        "features_extractor_class": "policy", "features_extractor_kwargs": "features_dim"}


def check_sb3_kwargs(v: Any) -> Optional[str]:
    """sb3_kwargs may not set what the agent sets from a field: the field's value would be
    recorded in config.json and another one used."""
    if not isinstance(v, dict) or not isinstance(v.get("policy_kwargs", {}), dict):
        return "a dict of keyword arguments (its policy_kwargs a dict too)"
    taken = [(k, SET_BY_FIELDS[k]) for k in v if k in SET_BY_FIELDS]
    taken += [(f"policy_kwargs.{k}", POLICY_SET_BY_FIELDS[k]) for k in v.get("policy_kwargs", {}) if k in POLICY_SET_BY_FIELDS]
    if not taken:
        return None
    how = "; ".join(f"{k}: {'the field ' + f if f else 'set by the run'}" for k, f in taken)
    return f"keyword arguments the agent does not set itself (set elsewhere: {how})"


@dataclass
class SB3Config(KLConfig):
    """Fields of the Stable-Baselines3 agents (``ppo``, ``a2c``)."""

    adv_steps: int = param(200, "iterations (one SB3 rollout and update each)", kind=SIZE, check=at_least(0))
    num_envs: int = param(64, "parallel sequences of the env", check=at_least(1))
    n_steps: Optional[int] = param(None, "env steps per rollout and env (None: max_length)", check=at_least(1))
    reward: Literal["terminal", "mc", "dense"] = param("terminal", "reward mode of the env")
    transform: Optional[str] = param(None, "reward transform (None: prob, or identity for the oracle)",
                                     check=check_transform)
    n_rollouts: int = param(16, "Monte-Carlo rollouts (reward='mc')", kind=SIZE, check=at_least(1))
    discriminator: Any = param("cnn", "a discriminators registry name (rnn for dense rewards) or 'oracle'",
                               check=check_discriminator)
    discriminator_options: Dict[str, Any] = param({}, "keyword options of discriminators.make")
    d_lr: float = param(1e-4, "discriminator learning rate", check=positive)
    d_batch_size: int = param(64, "discriminator minibatch size", check=at_least(1))
    d_epochs: int = param(1, "epochs of each discriminator retraining", kind=SIZE, check=at_least(1))
    d_every: int = param(1, "retrain the discriminator every this many rollouts", check=at_least(1))
    learning_rate: float = param(3e-4, "SB3 learning rate", check=positive, source=SB3)
    policy: Literal["generator", "gru"] = param("generator", "the policy: textgym's LSTM generator with a value head "
                                                             "(warm-startable from an MLE run) or SB3's MLP on a GRU "
                                                             "features extractor")
    emb_dim: int = param(32, "generator embedding size (policy='generator')", check=at_least(1))
    hidden_dim: int = param(32, "generator LSTM size (policy='generator')", check=at_least(1))
    features_dim: int = param(64, "GRU size of the features extractor (policy='gru')", check=at_least(1))
    sb3_kwargs: Dict[str, Any] = param({}, "any other keyword argument of the SB3 algorithm (policy_kwargs are added "
                                           "to the policy's)", check=check_sb3_kwargs)

    @property
    def oracle_reward(self) -> bool:
        return isinstance(self.discriminator, str) and self.discriminator == "oracle"


class SB3Agent(Agent):
    """Trains a Stable-Baselines3 algorithm on the token env (see the module docstring)."""

    ALGO = "ppo"
    Config: ClassVar[type] = SB3Config
    config: SB3Config

    def __init__(self, data: Any, config: Any = None, device: Any = "cpu", seed: int = 0) -> None:
        from textgym.env import TokenVecEnv
        from textgym.sb3 import DiscriminatorCallback, SB3PolicyGenerator, SB3VecEnv, TokenFeaturesExtractor, unwrap_token_env

        data = data if isinstance(data, TextData) else resolve_data(data)
        if isinstance(data, LabelledCorpus):  # the policies are unconditional: their env has no classes
            data = data.sentences_only()
        if not isinstance(config, SB3Config):
            config = replace(SB3Config(), **(config or {}))
        super().__init__(data, config, device, seed)
        c = self.config
        # SB3 draws actions (and dropout) from torch's global RNG and seeds it itself in the
        # algorithm's constructor; seed it here first so the discriminator's initialization is
        # reproducible too. The checkpoint stores the global RNG state, so resuming is exact.
        torch.manual_seed(seed)
        scorer: Any
        if c.oracle_reward:
            if not isinstance(data, OracleData):
                raise ValueError("discriminator='oracle' needs data='oracle'")
            scorer, self.discriminator = "oracle", None
        else:
            import discriminators

            self.discriminator = discriminators.make(c.discriminator, vocab_size=data.vocab_size,
                                                     max_length=data.max_length, **c.discriminator_options).to(self.device)
            scorer = self.discriminator
        self.env = TokenVecEnv(c.num_envs, data=data, reward=c.reward, discriminator=scorer, transform=c.transform,
                               n_rollouts=c.n_rollouts if c.reward == "mc" else None, device=self.device, seed=seed)
        algo = self.algorithm()
        n_steps = c.n_steps or data.max_length
        if c.policy == "generator":
            from agents.sb3_policy import GeneratorPolicy

            policy: Any = GeneratorPolicy
            policy_kwargs: Dict[str, Any] = dict(emb_dim=c.emb_dim, hidden_dim=c.hidden_dim, eos_id=data.eos_id)
        else:
            policy, policy_kwargs = "MlpPolicy", dict(features_extractor_class=TokenFeaturesExtractor,
                                                      features_extractor_kwargs=dict(features_dim=c.features_dim))
        # the statistics of every episode of a rollout (SB3 keeps the last 100: fewer than a rollout ends)
        kw: Dict[str, Any] = dict(n_steps=n_steps, learning_rate=c.learning_rate, seed=seed, device=self.device, verbose=0,
                                  stats_window_size=n_steps * c.num_envs)
        if self.ALGO == "ppo":
            kw["batch_size"] = ppo_batch_size(n_steps * c.num_envs)
        kw.update(c.sb3_kwargs)  # none of the keys above but these two (check_sb3_kwargs)
        kw["policy_kwargs"] = {**policy_kwargs, **c.sb3_kwargs.get("policy_kwargs", {})}
        self.vec_env = SB3VecEnv(self.env)  # its episode returns and lengths are part of the state
        self.model = algo(policy, self.vec_env, **kw)
        self.env = unwrap_token_env(self.model.get_env())  # the same-step view SB3 steps
        if c.policy == "generator":
            self._generator: Any = self.model.policy.generator
        else:
            self._generator = SB3PolicyGenerator(self.model.policy, data.vocab_size, data.max_length, data.eos_id)
        if c.reward == "mc":  # the policy completes the prefixes from the first rollout on (not the env's default)
            self.env.set_rollout_policy(self._generator)
        self.callbacks: List[Any] = []
        self.callback = None
        if isinstance(self.discriminator, torch.nn.Module):  # the no-information controls are never trained
            self.trainer = discriminators.DiscriminatorTrainer(self.discriminator, lr=c.d_lr, batch_size=c.d_batch_size,
                                                               seed=seed)
            # the env's real sequences: the callback holds out up to a fifth (at most 1,000) when the data has no test set
            self.callback = DiscriminatorCallback(self.discriminator, trainer=self.trainer, train_every=c.d_every,
                                                  k=c.d_epochs, seed=seed)
            self.callback.setup(self.env)
            self.callbacks.append(self.callback)
        self.kl = None
        controller = c.kl_controller()
        if controller is not None:
            if c.policy != "generator":
                raise ConfigError("kl_beta and kl_target need policy='generator' (a reference generator to compare with)")
            from agents.sb3_policy import KLRewardCallback

            self.kl = KLRewardCallback(self._generator, controller)
            self.callbacks.append(self.kl)
        self.rollout_steps = n_steps * c.num_envs

    @classmethod
    def algorithm(cls) -> Any:
        from stable_baselines3 import A2C, PPO

        return {"ppo": PPO, "a2c": A2C}[cls.ALGO]

    @classmethod
    def updates_per_iteration(cls, config: SB3Config, max_length: int) -> int:
        """The policy's optimizer steps in one iteration (one SB3 ``learn`` of a rollout), what a
        study's MLE control matches: A2C one; PPO ``n_epochs`` passes over the rollout of
        ``n_steps × num_envs`` tokens in minibatches of ``batch_size`` (the last one partial),
        SB3's own defaults unless ``sb3_kwargs`` sets them."""
        if cls.ALGO != "ppo":
            return 1
        import inspect

        defaults = inspect.signature(cls.algorithm().__init__).parameters
        rollout = (config.n_steps or max_length) * config.num_envs
        batch = int(config.sb3_kwargs.get("batch_size", ppo_batch_size(rollout)))
        epochs = int(config.sb3_kwargs.get("n_epochs", defaults["n_epochs"].default))
        return epochs * -(-rollout // batch)

    @property
    def generator(self) -> Any:
        return self._generator

    @property
    def total_iterations(self) -> int:
        return self.config.adv_steps

    def train_iteration(self) -> Dict[str, Any]:
        if self.model.ep_info_buffer is not None:
            self.model.ep_info_buffer.clear()  # episode statistics of this iteration only
        if self.callback is not None:
            self.callback.last_stats = {}  # d_* figures only on iterations that retrain the discriminator
        try:
            self.model.learn(self.rollout_steps, callback=self.callbacks, reset_num_timesteps=self.iteration == 0,
                             progress_bar=False)
        except ValueError as exc:  # torch.distributions refusing NaN logits of a diverged policy
            if "nan" in str(exc).lower() or "constraint" in str(exc):
                raise FloatingPointError(f"the {self.ALGO} policy diverged at iteration {self.iteration}: "
                                         f"{str(exc).splitlines()[0]}") from None
            raise
        if not all(bool(torch.isfinite(p).all()) for p in self.model.policy.parameters()):
            raise FloatingPointError(f"the {self.ALGO} policy's parameters became non-finite at iteration {self.iteration}")
        self.iteration += 1
        eps = [e["r"] for e in self.model.ep_info_buffer]
        stats: Dict[str, Any] = {"phase": "rl"}
        if eps:  # none when n_steps < max_length leaves every episode running (NaN read as divergence)
            stats["episode_reward"] = float(np.mean(eps))
        for k in ("train/loss", "train/policy_loss", "train/value_loss", "train/entropy_loss"):
            v = self.model.logger.name_to_value.get(k)
            if v is not None:
                stats[k.split("/")[1]] = float(v)
        if self.callback is not None:
            stats.update({f"d_{k}": v for k, v in self.callback.last_stats.items()})
            if "heldout_acc" in self.callback.last_stats:  # the name every adversarial agent logs
                stats["d_heldout_acc"] = self.callback.last_stats["heldout_acc"]
                stats["d_heldout_loss"] = self.callback.last_stats["heldout_loss"]
        if self.kl is not None and self.kl.last_kl is not None:
            stats.update(kl=self.kl.last_kl, kl_beta=self.kl.last_beta)  # the β of this rollout's rewards
        return stats

    def warm_start(self, state: Dict[str, Any], parts: Sequence[str] = ("generator",)) -> None:
        """``generator``: an MLE (or adversarial) run's LSTM generator becomes the policy's actor
        and the KL reference; ``discriminator``: the source run's discriminator weights."""
        for part in parts:
            if part == "generator":
                if self.config.policy != "generator":
                    raise ValueError("policy='gru' has no generator to warm start; use policy='generator'")
                if "generator" not in state:
                    raise ValueError("the source run has no LSTM generator to start from")
                load_weights(self._generator, state["generator"], "the source run's generator")
                self.model.policy.encoder.reset()
                if self.kl is not None:
                    load_weights(self.kl.reference, state["generator"], "the source run's generator")
                    self.kl.encoder.reset()
            elif part == "discriminator":
                if not isinstance(self.discriminator, torch.nn.Module) or state.get("discriminator") is None:
                    raise ValueError("the discriminator cannot be warm started here (no learned discriminator on one side)")
                load_weights(self.discriminator, state["discriminator"], "the source run's discriminator")
            else:
                raise ValueError(f"unknown part {part!r}; valid: generator, discriminator")

    def state_dict(self) -> Dict[str, Any]:
        """Tensors and plain data only (checkpoints are read with ``weights_only=True``): the
        policy's and its optimizer's state dicts rather than SB3's zip (whose data section
        unpickles classes), numpy arrays as tensors."""
        env = self.env
        name, keys, pos, has_gauss, gauss = np.random.get_state()
        return {
            "iteration": self.iteration, "num_timesteps": self.model.num_timesteps,
            "policy": self.model.policy.state_dict(), "policy_optimizer": self.model.policy.optimizer.state_dict(),
            "last_obs": torch.from_numpy(np.asarray(self.model._last_obs)).clone(),
            "last_episode_starts": torch.from_numpy(np.asarray(self.model._last_episode_starts)).clone(),
            "env": {"tokens": env.tokens, "lengths": env.lengths, "rng": env.rng.get_state(),
                    # the running episodes' returns and lengths so far, for SB3's episode statistics
                    "returns": self.vec_env._returns.clone(), "steps": self.vec_env._steps.clone()},
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                          "has_gauss": int(has_gauss), "gauss": float(gauss)},
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            "discriminator": None if self.discriminator is None else self.discriminator.state_dict(),
            "trainer": None if self.callback is None else self.trainer.state_dict(),
            "callback_rng": None if self.callback is None else self.callback.rng.get_state(),
            # sequences collected since the last retraining (d_every > 1) and the rollout count
            "callback_pending": None if self.callback is None else {
                "fake": [torch.from_numpy(np.array(x)) for x in self.callback.fake], "rollouts": self.callback.rollouts},
            "kl": None if self.kl is None else {"reference": self.kl.reference.state_dict(),
                                                "controller": self.kl.controller.state_dict()},
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.iteration = state["iteration"]
        self.model.policy.load_state_dict(state["policy"])
        load_optimizer_state(self.model.policy.optimizer, state["policy_optimizer"])
        self.model.num_timesteps = state["num_timesteps"]
        self.model._last_obs = state["last_obs"].numpy().copy()
        self.model._last_episode_starts = state["last_episode_starts"].numpy().copy()
        self.env.tokens = state["env"]["tokens"].to(self.env.device, copy=True)  # the env writes it in place
        self.env.lengths = state["env"]["lengths"].to(self.env.device, copy=True)
        self.env.rng.set_state(state["env"]["rng"])
        if "returns" in state["env"]:  # checkpoints of earlier releases lack them
            self.vec_env._returns.copy_(state["env"]["returns"])
            self.vec_env._steps.copy_(state["env"]["steps"])
        self.env._started = True
        torch.set_rng_state(state["torch_rng"])
        r = state["numpy_rng"]
        np.random.set_state((r["name"], r["keys"].numpy().astype(np.uint32), r["pos"], r["has_gauss"], r["gauss"]))
        if state.get("cuda_rng") is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        if self.discriminator is not None:
            self.discriminator.load_state_dict(state["discriminator"])
        if self.callback is not None:
            self.trainer.load_state_dict(state["trainer"])
            self.callback.rng.set_state(state["callback_rng"])
            pending = state["callback_pending"]
            self.callback.fake = [x.numpy() for x in pending["fake"]]
            self.callback.rollouts = int(pending["rollouts"])
        if self.kl is not None:
            self.kl.reference.load_state_dict(state["kl"]["reference"])
            self.kl.controller.load_state_dict(state["kl"]["controller"])
            self.kl.encoder.reset()
        if hasattr(self.model.policy, "encoder"):
            self.model.policy.encoder.reset()


def ppo_batch_size(rollout: int) -> int:
    """PPO's minibatch here: the largest divisor of the rollout's ``n_steps × num_envs`` tokens up
    to 256 (SB3's default, 64, makes many small steps; a divisor leaves no partial minibatch)."""
    return max(d for d in range(1, min(256, rollout) + 1) if rollout % d == 0)


class PPOAgent(SB3Agent):
    ALGO = "ppo"


class A2CAgent(SB3Agent):
    ALGO = "a2c"
