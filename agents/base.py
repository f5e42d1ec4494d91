"""The interface between training algorithms and ``train.py``.

``train.py`` builds an agent with ``agents.make(name, data, config, device=..., seed=...)``
and drives it one iteration at a time; it owns the progress bar, evaluation, logging,
checkpoints and ``--resume``. An agent owns its generator, optimizers, discriminator and
random state, all of which go into ``state_dict()`` so that a resumed run continues
bit-for-bit on CPU.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Dict

import torch

from textgym.data import TextData


class Agent(ABC):
    """A generator-training algorithm.

    Args:
        data: the training data (``TextData``: vocab_size, max_length, eos_id, train/test tensors).
        config: a dict of hyperparameters (the budget preset merged with CLI overrides);
            each agent documents the keys it reads and ignores the others.
        device: where all tensors live.
        seed: seeds every random draw of the agent (torch.Generator objects, not global state).
    """

    name: str = "base"

    def __init__(self, data: TextData, config: Dict[str, Any], device: torch.device, seed: int) -> None:
        self.data, self.config, self.device, self.seed = data, dict(config), torch.device(device), seed
        self.iteration = 0

    @property
    @abstractmethod
    def total_iterations(self) -> int:
        """How many calls of :meth:`train_iteration` the configured budget makes."""

    @abstractmethod
    def train_iteration(self) -> Dict[str, float]:
        """One iteration (an MLE epoch, or one adversarial step); returns scalar statistics
        (e.g. ``{"phase": 0 or 1, "g_loss": ..., "d_loss": ...}``) and increments ``self.iteration``."""

    @property
    @abstractmethod
    def generator(self) -> Any:
        """The generator policy (``agents.generator.Generator``): sample / log_probs / rollout."""

    @abstractmethod
    def state_dict(self) -> Dict[str, Any]:
        """Everything needed to resume: models, optimizers, RNG states, ``iteration``."""

    @abstractmethod
    def load_state_dict(self, state: Dict[str, Any]) -> None: ...
