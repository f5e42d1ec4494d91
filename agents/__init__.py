"""Generator-training agents and their registry.

``agents.make(name, data, config, device, seed)`` builds an :class:`agents.base.Agent` from a
registered name: the agent class with its preset config, overridden by ``config``.

====================== ====================================== ===================================
name                   class                                  algorithm
====================== ====================================== ===================================
``mle``                :class:`agents.mle.MLEAgent`            teacher-forced maximum likelihood
``seqgan``             :class:`agents.reinforce.ReinforceAgent` SeqGAN: MC-rollout policy gradient
``maligan``            :class:`agents.reinforce.MaliGANAgent`   MaliGAN-basic
``maligan-mixed``      :class:`agents.maligan_mixed.MixedMaliGANAgent` MaliGAN with mixed MLE training
``scratchgan``         :class:`agents.reinforce.ReinforceAgent` ScratchGAN: dense rewards, no pretraining
``reinforce``          :class:`agents.reinforce.ReinforceAgent` plain REINFORCE, terminal reward
``maskgan``            :class:`agents.actor_critic.ActorCriticAgent` MaskGAN-style actor-critic
====================== ====================================== ===================================

``ppo`` and ``a2c`` (Stable-Baselines3, ``agents.sb3_agents``) are registered when that module
imports; other packages add agents with :func:`register`.
Every config key, its default and meaning is documented in the agent's module docstring.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple, Type, Union

import torch

from agents.actor_critic import ActorCriticAgent
from agents.base import Agent
from agents.generator import Generator, RolloutCopy
from agents.mle import MLEAgent
from agents.maligan_mixed import MixedMaliGANAgent, clamp_length
from agents.reinforce import MaliGANAgent, ReinforceAgent
from textgym.data import TextData

_SEQGAN_D = {"discriminator": "cnn", "d_pretrain_steps": 50, "d_steps": 5, "d_epochs": 3, "d_samples": 10_000, "d_lr": 1e-4}

AGENTS: Dict[str, Tuple[Type[Agent], Dict[str, Any]]] = {
    "mle": (MLEAgent, {"mle_epochs": 120, "batch_size": 64, "mle_lr": 0.01}),
    "seqgan": (ReinforceAgent, {
        "mle_epochs": 120, "adv_steps": 200, "g_steps": 1, "batch_size": 64, "gen_lr": 0.01,
        "reward": "mc", "transform": "prob", "n_rollouts": 16, "gamma": 1.0, "baseline": "none",
        "rollout_rate": 0.8, "rollout_update": "mix", **_SEQGAN_D,
    }),
    "maligan": (MaliGANAgent, {
        "mle_epochs": 120, "adv_steps": 200, "g_steps": 1, "batch_size": 64, "gen_lr": 0.01,
        "reward": "terminal", "transform": "maligan", "gamma": 1.0, "baseline": "mean", **_SEQGAN_D,
    }),
    "maligan-mixed": (MixedMaliGANAgent, {
        "mle_epochs": 120, "adv_steps": 200, "g_steps": 1, "batch_size": 64, "gen_lr": 0.01,
        "mixed_K": 2, "mixed_every": 10, "mixed_m": 8, "baseline": "mean", **_SEQGAN_D,
    }),
    "scratchgan": (ReinforceAgent, {
        "mle_epochs": 0, "adv_steps": 2000, "g_steps": 1, "batch_size": 512, "gen_lr": 9.59e-5, "adam_beta1": 0.5,
        "reward": "dense", "transform": "centered_prob", "gamma": 0.23, "baseline": "ema", "baseline_decay": 0.08,
        "discriminator": "rnn", "d_pretrain_steps": 0, "d_steps": 1, "d_epochs": 1, "d_samples": 512,
        "d_batch_size": 512, "d_lr": 9.38e-3,
    }),
    "reinforce": (ReinforceAgent, {
        "mle_epochs": 120, "adv_steps": 200, "g_steps": 1, "batch_size": 64, "gen_lr": 0.01,
        "reward": "terminal", "transform": None, "gamma": 1.0, "baseline": "mean", **_SEQGAN_D,
    }),
    "maskgan": (ActorCriticAgent, {
        "mle_epochs": 120, "adv_steps": 200, "g_steps": 1, "batch_size": 64, "gen_lr": 5e-4,
        "gamma": 0.89, "adv_clip": 5.0, "critic_lr": 5e-3, "transform": "log",
        "discriminator": "rnn", "d_pretrain_steps": 50, "d_steps": 5, "d_epochs": 3, "d_samples": 10_000, "d_lr": 1e-4,
    }),
}


def register(name: str, cls: Type[Any], preset: Optional[Dict[str, Any]] = None, *, overwrite: bool = False) -> None:
    """Register an agent class (constructor ``cls(data, config, device, seed)``) under ``name``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"an agent name must be a non-empty string, got {name!r}")
    if name in AGENTS and not overwrite:
        raise ValueError(f"agent {name!r} is already registered (pass overwrite=True to replace it)")
    AGENTS[name] = (cls, dict(preset or {}))


def available() -> List[str]:
    """The registered agent names, sorted."""
    return sorted(AGENTS)


def preset(name: str) -> Dict[str, Any]:
    """A copy of the preset config of a registered agent (class defaults fill the other keys)."""
    _check_name(name)
    return dict(AGENTS[name][1])


def _check_name(name: str) -> None:
    if name not in AGENTS:
        raise ValueError(f"unknown agent {name!r}; valid: {available()}")


def make(
    name: str,
    data: Union[str, TextData] = "oracle",
    config: Optional[Dict[str, Any]] = None,
    device: Union[str, torch.device] = "cpu",
    seed: int = 0,
) -> Agent:
    """Build a registered agent: its preset config overridden by ``config``.

    Args:
        name: one of :func:`available`.
        data: ``"oracle"``, a path to a text file, or a TextData.
        config: overrides of the preset (keys an agent does not read are ignored).
        device: where the agent's tensors live.
        seed: seeds every random draw of the agent.

    Raises:
        ValueError: unknown name, or a config value the agent refuses.
    """
    _check_name(name)
    cls, base = AGENTS[name]
    agent = cls(data, {**base, **(config or {})}, device=device, seed=seed)
    agent.name = name  # the registry name (several presets share a class)
    return agent


def _register_optional() -> None:
    """Register the Stable-Baselines3 agents (``ppo``, ``a2c``) of ``agents.sb3_agents`` when present."""
    try:
        from agents import sb3_agents
    except ImportError:  # the module or its dependencies are absent: those agents are not offered
        return
    for name, cls_name in (("ppo", "PPOAgent"), ("a2c", "A2CAgent")):
        cls = getattr(sb3_agents, cls_name, None)
        if cls is not None and name not in AGENTS:
            register(name, cls, {})


_register_optional()

__all__ = [
    "AGENTS", "ActorCriticAgent", "Agent", "Generator", "MLEAgent", "MaliGANAgent", "MixedMaliGANAgent",
    "ReinforceAgent", "RolloutCopy", "available", "clamp_length", "make", "preset", "register",
]
