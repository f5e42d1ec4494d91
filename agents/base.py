"""The interface between training algorithms and ``train.py``.

The driver (:func:`agents.driver.train`, behind ``train.py`` and the benchmarks) builds an agent
with ``agents.make(name, data, config, device=..., seed=...)`` and drives it one iteration at a
time; it owns the progress bar, evaluation, logging, checkpoints, ``--resume`` and warm
starts. An agent owns its generator, optimizers, discriminator and
random state, all of which go into ``state_dict()`` so that a resumed run continues
bit-for-bit on CPU.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Dict, Sequence

import torch

from textgym.data import TextData
from textgym.protocols import SequenceModel


class Agent(ABC):
    """A generator-training algorithm.

    Args:
        data: the training data (``TextData``: vocab_size, max_length, eos_id, train/test tensors).
        config: the agent's typed config (an instance of its ``Config`` dataclass, see
            :mod:`agents.config`).
        device: where all tensors live.
        seed: seeds every random draw of the agent (torch.Generator objects, not global state).
    """

    name: str = "base"
    Config: ClassVar[type]

    def __init__(self, data: TextData, config: Any, device: torch.device | str, seed: int) -> None:
        self.data, self.config, self.device, self.seed = data, config, torch.device(device), seed
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
    def generator(self) -> SequenceModel:
        """The generator policy (``agents.generator.Generator``): sample / log_probs / rollout."""

    @abstractmethod
    def state_dict(self) -> Dict[str, Any]:
        """Everything needed to resume: models, optimizers, RNG states, ``iteration``."""

    @abstractmethod
    def load_state_dict(self, state: Dict[str, Any]) -> None: ...

    def warm_start(self, state: Dict[str, Any], parts: Sequence[str] = ("generator",)) -> None:
        """Take ``parts`` (``"generator"``, ``"discriminator"``) of another run's ``state_dict()``.

        Only weights are taken: optimizers, random streams and the iteration count stay this
        agent's own. ValueError when a part is missing or its shapes differ.
        """
        raise ValueError(f"agent {self.name!r} cannot be warm started")
