"""MLE: maximum-likelihood training of the generator with teacher forcing.

Update rule (one step on a minibatch B of real sequences x with lengths L_i):

    L(θ) = - Σ_{i∈B} Σ_{t<L_i} log p_θ(x_{i,t} | x_{i,<t}) / Σ_{i∈B} L_i
    θ ← Adam(θ, ∇L(θ)),  gradients clipped to a global norm of ``grad_clip``

One iteration is one epoch over ``data.train`` in a fresh seeded shuffle (SeqGAN's
pretraining: batch 64, Adam lr 0.01, grad clip 5.0), or ``iteration_updates`` minibatches.

Early stopping (the ``mle`` agent on its own, :class:`MLEAgentConfig`): the last ``val_size``
training sequences become a validation split that is never trained on; after each iteration
``nll_val`` is their mean per-token NLL; after ``patience`` iterations without a lower
``nll_val`` the run stops, and the generator of the best iteration is restored (also when the
epochs run out first). MLE on the 10,000 oracle sequences over-fits within a few epochs (NLL-test
rises while the training NLL still falls), so a start for adversarial training is chosen this way.

:class:`MLEAgent` is also the base of the adversarial agents, which start with ``mle_epochs`` of
it (without early stopping). The fields, their defaults and help are :class:`MLEConfig`'s.

Stats of an iteration: ``phase="mle"``, ``g_loss`` and ``nll_train`` (the epoch's mean
teacher-forced NLL per token on the training set; the same number), and with a validation split
``nll_val`` and ``best_iteration``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, List, Literal, Optional, Sequence, Union

import numpy as np
import torch

from agents.base import Agent
from agents.config import RECIPE, SEQGAN, SIZE, ConfigError, at_least, nonnegative, param, positive, replace
from agents.generator import Generator
from discriminators.base import load_optimizer_state, load_weights
from discriminators.graphed import GraphedUpdates
from textgym.data import TextData, resolve_data
from textgym.masks import length_mask, masked_mean
from textgym.metrics import masked_nll, sequence_log_probs


def derive_seed(seed: int, stream: str) -> int:
    """An independent 63-bit seed for the named random stream of an agent seeded with ``seed``."""
    entropy = [seed & 0xFFFFFFFFFFFFFFFF, *stream.encode()]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def shuffled_order(n: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` indices into ``n`` rows drawn without replacement, reshuffled each time the rows
    are used up: the first ``count`` entries of successive seeded permutations of ``range(n)``."""
    return torch.cat([torch.randperm(n, generator=generator) for _ in range(max(1, -(-count // n)))])[:count]


def check_finite(value: torch.Tensor, name: str, iteration: int) -> float:
    """``float(value)``, or FloatingPointError naming the quantity and the iteration."""
    v = float(value)
    if not math.isfinite(v):
        raise FloatingPointError(f"{name} became {v} at iteration {iteration}")
    return v


@dataclass
class MLEConfig:
    """Fields of :class:`MLEAgent` (and the MLE phase of every adversarial agent)."""

    mle_epochs: int = param(120, "MLE (pre)training epochs (PRE_EPOCH_NUM)", kind=SIZE, check=at_least(0), source=SEQGAN)
    batch_size: int = param(64, "sequences per minibatch (MLE and generator updates)", kind=RECIPE, check=at_least(1),
                            source=SEQGAN)
    mle_lr: float = param(0.01, "Adam learning rate of MLE", check=positive, source=SEQGAN)
    grad_clip: float = param(5.0, "global gradient-norm clip of generator updates (0: none)", check=nonnegative,
                             source=SEQGAN)
    emb_dim: int = param(32, "generator embedding size", check=at_least(1), source=SEQGAN)
    hidden_dim: int = param(32, "generator LSTM size", check=at_least(1), source=SEQGAN)
    init: Literal["seqgan", "default"] = param("seqgan", "generator init: seqgan (all parameters ~ N(0, 0.1)) or "
                                                         "default (PyTorch's)", source=SEQGAN)


@dataclass
class MLEAgentConfig(MLEConfig):
    """Fields of the ``mle`` agent on its own: :class:`MLEConfig`, early stopping, short iterations."""

    val_size: int = param(0, "last training sequences held out as a validation split, never trained on (0: none)",
                          check=at_least(0))
    patience: int = param(0, "stop after this many iterations without a lower validation NLL and keep the best "
                             "iteration's generator (0: off; needs val_size)", check=at_least(0))
    iteration_updates: int = param(0, "minibatch updates per iteration (0: one whole epoch); the study's MLE control "
                                      "matches an adversarial phase's generator updates with it", check=at_least(0))


class MLEAgent(Agent):
    """Teacher-forced maximum likelihood (see the module docstring for the update)."""

    name = "mle"
    Config: ClassVar[type] = MLEAgentConfig
    config: MLEConfig

    def __init__(
        self,
        data: Union[str, TextData],
        config: Optional[Any] = None,
        device: Union[str, torch.device] = "cpu",
        seed: int = 0,
    ) -> None:
        if not isinstance(data, TextData):
            data = resolve_data(data)
        super().__init__(data, self.make_config(config), device, seed)
        c = self.config
        self._generator = self.build_generator().to(self.device)
        # Every random draw comes from these generators (never the global RNG).
        self.sample_rng = torch.Generator(device=self.device).manual_seed(derive_seed(seed, "sample"))
        self.data_rng = torch.Generator().manual_seed(derive_seed(seed, "data"))
        # capturable where the MLE updates replay as captured CUDA graphs (_mle_graphs)
        self.mle_opt = torch.optim.Adam(self._generator.parameters(), lr=c.mle_lr, capturable=self._mle_capturable())
        self._mle_sums = torch.zeros(3, dtype=torch.float64, device=self.device)  # see _mle_pass_deferred
        self._mle_graphed: Optional[GraphedUpdates] = None
        self.train_tokens = data.train.to(self.device)
        self.train_lengths = data.train_lengths.to(self.device)
        self.val_size, self.patience = int(getattr(c, "val_size", 0)), int(getattr(c, "patience", 0))
        if self.patience and not self.val_size:
            raise ConfigError("patience needs a validation split: set val_size > 0")
        if self.val_size:
            M = self.train_tokens.shape[0]
            if self.val_size >= M:
                raise ConfigError(f"val_size = {self.val_size} leaves no training sequences (the data has {M})")
            self.val_tokens, self.val_lengths = self.train_tokens[M - self.val_size :], self.train_lengths[M - self.val_size :]
            keep = M - self.val_size
            self.train_tokens, self.train_lengths = self.train_tokens[:keep], self.train_lengths[:keep]
        # early stopping: the best validation NLL, its iteration and generator, iterations since
        self.best_val, self.best_iteration, self.bad_iterations, self.stopped = math.inf, 0, 0, False
        self.best_generator: Optional[Dict[str, torch.Tensor]] = None

    @classmethod
    def make_config(cls, config: Optional[Any]) -> Any:
        """An instance of ``cls.Config``: as given, or the class defaults updated by a dict
        (unknown keys and bad values raise ConfigError naming the field)."""
        if isinstance(config, cls.Config):
            return replace(config)
        if config is not None and not isinstance(config, dict):
            raise TypeError(f"config must be a {cls.Config.__name__} or a dict, got {type(config).__name__}")
        return replace(cls.Config(), **(config or {}))

    def build_generator(self) -> Any:
        """The model this agent trains (subclasses with another model override it)."""
        c, data = self.config, self.data
        return Generator(data.vocab_size, data.max_length, eos_id=data.eos_id, emb_dim=c.emb_dim,
                         hidden_dim=c.hidden_dim, init=c.init, seed=derive_seed(self.seed, "generator-init"))

    # ------------------------------------------------------------------ the Agent interface
    @property
    def generator(self) -> Generator:
        return self._generator

    @property
    def total_iterations(self) -> int:
        """``mle_epochs``, or the iteration where early stopping stopped."""
        return self.iteration if self.stopped else int(self.config.mle_epochs)

    def train_iteration(self) -> Dict[str, Any]:
        k = int(getattr(self.config, "iteration_updates", 0))
        stats: Dict[str, Any] = {"phase": "mle", **(self.mle_updates(k) if k else self.mle_epoch())}
        self.iteration += 1
        if self.val_size:
            stats.update(self.validate())
        return stats

    def validate(self) -> Dict[str, Any]:
        """``nll_val`` on the validation split; keeps the best generator and, with ``patience``,
        stops (restoring it) after ``patience`` iterations without improvement or at the last."""
        nll = self.validation_nll()
        if nll < self.best_val:
            self.best_val, self.best_iteration, self.bad_iterations = nll, self.iteration, 0
            self.best_generator = {k: v.detach().clone() for k, v in self._generator.state_dict().items()}
        else:
            self.bad_iterations += 1
        if self.patience and (self.bad_iterations >= self.patience or self.iteration >= self.config.mle_epochs):
            assert self.best_generator is not None
            self._generator.load_state_dict(self.best_generator)
            self.stopped = True
        return {"nll_val": nll, "best_iteration": float(self.best_iteration)}

    def validation_nll(self) -> float:
        """Mean per-token NLL of the validation split (the early-stopping criterion)."""
        self._generator.eval()
        nll = masked_nll(sequence_log_probs(self._generator, self.val_tokens, self.val_lengths), self.val_lengths)
        self._generator.train()
        return nll

    # ------------------------------------------------------------------ MLE
    def mle_loss(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Mean per-token NLL of real tokens (B, T) over positions < lengths (B,); differentiable."""
        lp = self._generator.log_probs(tokens)
        return -masked_mean(lp, length_mask(lengths, tokens.shape[1]))

    def optimizer_step(self, opt: torch.optim.Optimizer, loss: torch.Tensor, name: str = "g_loss") -> float:
        """Backward, clip, step; raises FloatingPointError on a non-finite loss."""
        value = check_finite(loss.detach(), name, self.iteration)
        self.apply_gradients(opt, loss, name)
        return value

    def apply_gradients(self, opt: torch.optim.Optimizer, loss: torch.Tensor, name: str = "g_loss", *,
                        check: bool = True) -> Optional[torch.Tensor]:
        """Backward, clip, step; the gradient norm when clipping (else None). With ``check``,
        FloatingPointError on a non-finite norm before the step (a host sync); without, no
        check (the caller checks what it sums)."""
        opt.zero_grad(set_to_none=True)
        loss.backward()
        clip = self.config.grad_clip
        params = [p for g in opt.param_groups for p in g["params"]]
        norm = None
        if clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(params, clip)
            if check:
                check_finite(norm, f"{name} gradient norm", self.iteration)
        opt.step()
        return norm

    def mle_epoch(self) -> Dict[str, float]:
        """One epoch of teacher forcing over ``data.train`` in a seeded shuffle."""
        n, bs = self.train_tokens.shape[0], self.config.batch_size
        perm = torch.randperm(n, generator=self.data_rng).to(self.device)
        return self._mle_pass([perm[i : i + bs] for i in range(0, n, bs)])

    def mle_updates(self, k: int) -> Dict[str, float]:
        """``k`` minibatch updates on sequences drawn without replacement (reshuffled when used up)."""
        bs = self.config.batch_size
        order = shuffled_order(self.train_tokens.shape[0], k * bs, self.data_rng).to(self.device)
        return self._mle_pass([order[i * bs : (i + 1) * bs] for i in range(k)])

    def _mle_pass(self, batches: List[torch.Tensor]) -> Dict[str, float]:
        """One update per batch of row ids; the token-weighted mean NLL of the batches.

        On the CPU each loss is checked before its update. Elsewhere the losses are summed on
        the device and checked once, at the end (a FloatingPointError then stops the run after
        the pass, before its checkpoint): a check per update makes the host wait for the device
        at every update, which a small model's update on a GPU cannot afford.
        """
        if self.device.type != "cpu":
            return self._mle_pass_deferred(batches)
        self._generator.train()
        total, count = 0.0, 0
        for idx in batches:
            tokens, lengths = self.train_tokens[idx], self.train_lengths[idx]
            value = self.optimizer_step(self.mle_opt, self.mle_loss(tokens, lengths), "g_loss")
            k = int(lengths.sum())
            total, count = total + value * k, count + k
        nll = total / max(count, 1)
        return {"g_loss": nll, "nll_train": nll}

    def _mle_update(self, tokens: torch.Tensor, lengths: torch.Tensor) -> None:
        """One MLE update; adds (loss × tokens, tokens, a non-finite gradient norm) into
        ``_mle_sums``. The body that :meth:`_mle_pass_deferred` runs or replays; captured, it
        makes no host sync (the generator skips its token range check: the training set was
        checked when loaded)."""
        loss = self.mle_loss(tokens, lengths)
        norm = self.apply_gradients(self.mle_opt, loss, "g_loss", check=False)
        n_tok = lengths.sum().double()
        bad = torch.zeros((), device=self.device) if norm is None else ~torch.isfinite(norm)
        self._mle_sums += torch.stack([loss.detach().double() * n_tok, n_tok, bad.double()])

    def _mle_capturable(self) -> bool:
        """Whether this agent's MLE updates replay as CUDA graphs: on CUDA, with this class's
        model, loss and update (a subclass with its own runs them eagerly)."""
        own = ("build_generator", "mle_loss", "apply_gradients", "_mle_update")
        return self.device.type == "cuda" and all(getattr(type(self), m) is getattr(MLEAgent, m) for m in own)

    def _mle_graphs(self) -> Optional[GraphedUpdates]:
        """On CUDA, the MLE update as captured CUDA graphs (:mod:`discriminators.graphed`: the
        host launches one graph per update instead of its hundreds of kernels); None where
        :meth:`_mle_capturable` is not, or the optimizer is not capturable. Built again when
        ``mle_opt`` was replaced."""
        if self._mle_graphed is not None and self._mle_graphed.optimizer is self.mle_opt:
            return self._mle_graphed
        self._mle_graphed = None
        if self._mle_capturable() and all(g.get("capturable") for g in self.mle_opt.param_groups):
            self._mle_graphed = GraphedUpdates(self._mle_update, self.mle_opt, what="the MLE update")
        return self._mle_graphed

    def _mle_pass_deferred(self, batches: List[torch.Tensor]) -> Dict[str, float]:
        """:meth:`_mle_pass` off the CPU: the checks summed on the device, read once; on CUDA
        each update replays a captured graph after a few eager ones (:meth:`_mle_graphs`)."""
        self._generator.train()
        self._mle_sums.zero_()
        graphed = self._mle_graphs()
        for idx in batches:
            if graphed is not None:
                graphed.run((self.train_tokens, self.train_lengths), idx)
            else:
                self._mle_update(self.train_tokens[idx], self.train_lengths[idx])
        total, count, bad_norms = self._mle_sums.tolist()
        if bad_norms:
            raise FloatingPointError(f"g_loss gradient norm became non-finite in {int(bad_norms)} updates of "
                                     f"iteration {self.iteration}")
        nll = check_finite(torch.tensor(total), "g_loss (summed over the pass)", self.iteration) / max(count, 1.0)
        return {"g_loss": nll, "nll_train": nll}

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> Dict[str, Any]:
        return {
            "agent": self.name,
            "iteration": self.iteration,
            "generator": self._generator.state_dict(),
            "mle_opt": self.mle_opt.state_dict(),
            "sample_rng": self.sample_rng.get_state(),
            "data_rng": self.data_rng.get_state(),
            "early_stopping": {"best_val": self.best_val, "best_iteration": self.best_iteration,
                               "bad_iterations": self.bad_iterations, "stopped": self.stopped,
                               "best_generator": self.best_generator},
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        if state.get("agent", self.name) != self.name:
            raise ValueError(f"checkpoint of agent {state.get('agent')!r} cannot be loaded into agent {self.name!r}")
        self.iteration = int(state["iteration"])
        self._generator.load_state_dict(state["generator"])
        capturable = all(g.get("capturable", False) for g in self.mle_opt.param_groups)
        load_optimizer_state(self.mle_opt, state["mle_opt"], capturable=capturable)  # as built here, whoever saved it
        if self._mle_graphed is not None:
            self._mle_graphed.reset()  # the graphs step the replaced state tensors
        self.sample_rng.set_state(state["sample_rng"])
        self.data_rng.set_state(state["data_rng"])
        es = state.get("early_stopping")
        if es is not None:
            self.best_val, self.best_iteration = float(es["best_val"]), int(es["best_iteration"])
            self.bad_iterations, self.stopped = int(es["bad_iterations"]), bool(es["stopped"])
            self.best_generator = es["best_generator"]

    def warm_start(self, state: Dict[str, Any], parts: Sequence[str] = ("generator",)) -> None:
        for part in parts:
            if part != "generator":
                self._warm_start_part(state, part)
                continue
            if "generator" not in state:
                raise ValueError("the source run has no LSTM generator to start from")
            load_weights(self._generator, state["generator"], "the source run's generator")

    def _warm_start_part(self, state: Dict[str, Any], part: str) -> None:
        raise ValueError(f"agent {self.name!r} has no {part} to warm start")
