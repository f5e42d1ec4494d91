"""The schedule every adversarial agent shares: MLE pretraining, discriminator pretraining,
then adversarial steps of ``g_steps`` generator updates and ``d_steps`` discriminator rounds.

:class:`AdversarialAgent` builds the discriminator (a ``discriminators`` registry name, or any
object of the Discriminator protocol), trains it with one ``DiscriminatorTrainer`` on fresh
generator samples against real sequences, and checkpoints all of it. Subclasses implement
:meth:`AdversarialAgent.generator_step`: :mod:`agents.reinforce` (SeqGAN, MaliGAN, ScratchGAN,
REINFORCE), :mod:`agents.maligan_mixed` and :mod:`agents.actor_critic` (MaskGAN-style).

``discriminator="oracle"`` (oracle data only) replaces the discriminator by the oracle's
log-likelihood (the "perfect discriminator"; no discriminator is built or trained, the
``transform`` field is ignored and the reward is the plain log-likelihood: mean per token for
terminal and MC rewards, log p_oracle(x_t | x_<t) per token for dense rewards). For MaliGAN it
is the optimal discriminator's logit log D*/(1 - D*) = log p_oracle(x) - log p_θ(x).

The fields are :class:`AdversarialConfig`'s, on top of :class:`agents.mle.MLEConfig`.

Iterations: ``total_iterations = mle_epochs + d_pretrain_steps + adv_steps`` (the middle term
is 0 when no discriminator is trained); ``train_iteration()`` reports ``phase`` = ``"mle"``,
``"d_pretrain"`` or ``"adv"``. Non-finite losses raise FloatingPointError naming the quantity
and the iteration.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, List, Optional

import torch

from agents.config import RUN, SEQGAN, SIZE, at_least, nonnegative, not_data_sized, param, positive, suggest, unit_open
from agents.mle import MLEAgent, MLEConfig, check_finite, derive_seed
from discriminators.base import load_optimizer_state, load_weights, seeded
from discriminators.trainer import PRECISIONS
from textgym import scorers
from textgym.data import OracleData
from textgym.masks import length_mask, strip_padding
from textgym.protocols import Discriminator, LikelihoodModel, SequenceModel
from textgym.rewards import TRANSFORMS, Transform

# ScratchGAN's reward 2·D - 1 ("MaskGAN uses log(D), but this is more stable empirically").
CENTERED_PROB = Transform("centered_prob", lambda s: 2.0 * torch.sigmoid(s) - 1.0, needs_probability=True)
EXTRA_TRANSFORMS: Dict[str, Transform] = {CENTERED_PROB.name: CENTERED_PROB}


def resolve_transform(name: Optional[str]) -> Any:
    """A transform name -> a name textgym resolves, or one of ``EXTRA_TRANSFORMS``."""
    if name is None or name in TRANSFORMS:
        return name
    if name in EXTRA_TRANSFORMS:
        return EXTRA_TRANSFORMS[name]
    raise ValueError(f"unknown reward transform {name!r}; valid: {sorted([*TRANSFORMS, *EXTRA_TRANSFORMS])}")


WEAK_MARGIN, WEAK_ROUNDS = 0.05, 3  # held-out accuracy this close to chance this many times in a row: a warning
INFORMATIVE_ACC = 0.65  # held-out balanced accuracy below which a finished run calls its discriminator weak


def weak_streak(streak: int, acc: float, name: str) -> int:
    """The count of held-out evaluations in a row whose accuracy ``acc`` lay within ``WEAK_MARGIN``
    of chance (0.5), ``streak`` before this one; warns when it reaches ``WEAK_ROUNDS`` (once per
    such streak): the discriminator's rewards then carry no information."""
    streak = streak + 1 if abs(acc - 0.5) < WEAK_MARGIN else 0
    if streak == WEAK_ROUNDS:
        warnings.warn(f"{name}: the discriminator's held-out accuracy has stayed within {WEAK_MARGIN} of chance for "
                      f"{WEAK_ROUNDS} rounds (now {acc:.3f}): its rewards carry no information", RuntimeWarning,
                      stacklevel=4)  # past the caller and torch.no_grad's wrapper: the line that asked for the figures
    return streak


def discounted_returns(rewards: torch.Tensor, lengths: torch.Tensor, gamma: float) -> torch.Tensor:
    """R_t = Σ_{s=t}^{L-1} γ^{s-t} r_s: rewards (N, T), lengths (N,) -> (N, T), 0 beyond each length."""
    N, T = rewards.shape
    mask = length_mask(lengths.to(rewards.device), T)
    r = rewards * mask
    out = torch.empty_like(r)
    acc = torch.zeros(N, device=r.device, dtype=r.dtype)
    for t in range(T - 1, -1, -1):
        acc = r[:, t] + gamma * acc
        out[:, t] = acc
    return out * mask


class OracleRatioScorer:
    """The optimal discriminator on the oracle benchmark, as logits: log p_oracle(x) - log p_θ(x).

    D*(x) = p_data(x) / (p_data(x) + p_θ(x)), so logit D* = log p_data(x) - log p_θ(x) and
    r_D* = D*/(1 - D*) = p_data(x) / p_θ(x): MaliGAN's importance weight with a perfect D.
    Log-likelihoods are sums over the valid positions of each sequence.
    """

    is_probabilistic = True
    supports_prefixes = False

    def __init__(self, oracle: LikelihoodModel, generator: SequenceModel) -> None:
        self.oracle, self.generator = oracle, generator
        self.vocab_size = oracle.vocab_size

    @torch.no_grad()
    def score(self, tokens: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        T = tokens.shape[1]
        mask = torch.ones_like(tokens, dtype=torch.bool) if lengths is None else length_mask(lengths, T)
        lo = self.oracle.log_probs(strip_padding(tokens, lengths)).to(tokens.device)
        lg = self.generator.log_probs(tokens).to(tokens.device)
        return ((lo - lg) * mask).sum(1)

    __call__ = score


def maligan_scorer(agent: AdversarialAgent) -> Discriminator:
    """The scorer MaliGAN's weights r_D = D/(1-D) come from: the optimal discriminator
    :class:`OracleRatioScorer` with ``discriminator="oracle"``, else the agent's own, which
    must give logits of P(real) (ValueError otherwise)."""
    if agent.config.oracle_reward:
        assert isinstance(agent.data, OracleData)  # checked when the agent was built
        return OracleRatioScorer(agent.data.oracle_on(agent.device), agent._generator)
    if not getattr(agent.scorer, "is_probabilistic", True):
        raise ValueError(
            f"{agent.name} needs a probabilistic discriminator (logits of P(real)) for r_D = D/(1-D); "
            f"{type(agent.scorer).__name__} gives plain scores"
        )
    return agent.scorer


def check_transform(v: Any) -> Optional[str]:
    return None if v is None or v in TRANSFORMS or v in EXTRA_TRANSFORMS else \
        f"None or one of {sorted([*TRANSFORMS, *EXTRA_TRANSFORMS])}"


def check_discriminator(v: Any) -> Optional[str]:
    """A ``discriminator`` field: a registry name, 'oracle', or an object (not a string)."""
    import discriminators

    names = [*discriminators.available(), "oracle"]
    if isinstance(v, (bool, int, float, list, tuple, dict)):  # JSON values that name nothing (--discriminator 1)
        return f"one of {sorted(names)} or a Discriminator object"
    return None if not isinstance(v, str) or v in names else \
        f"one of {sorted(names)} or a Discriminator object{suggest(v, names)}"


@dataclass
class AdversarialConfig(MLEConfig):
    """Fields of the adversarial schedule and its discriminator (every adversarial agent)."""

    adv_steps: int = param(200, "adversarial steps (TOTAL_BATCH)", kind=SIZE, check=at_least(0), source=SEQGAN)
    g_steps: int = param(1, "generator updates per adversarial step", check=at_least(1), source=SEQGAN)
    gen_lr: float = param(0.01, "Adam learning rate of adversarial generator updates", check=positive, source=SEQGAN)
    adam_beta1: float = param(0.9, "Adam beta1 of the adversarial generator optimizer", check=unit_open)
    temperature: float = param(1.0, "sampling temperature of training samples and rollouts: 1 (the policy-gradient "
                                    "losses use the untempered log-probabilities, so other temperatures would bias them)",
                               check=lambda v: None if v == 1.0 else "1.0 (the losses use untempered log-probabilities)")
    discriminator: Any = param("cnn", "a discriminators registry name, 'oracle' (the oracle's log-likelihood, oracle "
                                      "data only), or an object of the Discriminator protocol", check=check_discriminator,
                               source=SEQGAN)
    discriminator_options: Dict[str, Any] = param({}, "keyword options of discriminators.make", check=not_data_sized)
    d_lr: float = param(1e-4, "discriminator learning rate", check=positive, source=SEQGAN)
    d_batch_size: int = param(64, "discriminator minibatch size", check=at_least(1), source=SEQGAN)
    d_steps: int = param(5, "discriminator rounds of fresh negatives per adversarial step", kind=SIZE,
                         check=at_least(0), source=SEQGAN)
    d_epochs: int = param(3, "epochs over each round's real + fake set", kind=SIZE, check=at_least(1), source=SEQGAN)
    d_samples: int = param(10_000, "negatives (and as many real sequences) per discriminator round", kind=SIZE,
                           check=at_least(1), source=SEQGAN)
    d_pretrain_steps: int = param(50, "discriminator pretraining rounds (one per iteration)", kind=SIZE,
                                  check=at_least(0), source=SEQGAN)
    d_adam_beta1: float = param(0.9, "Adam beta1 of the discriminator", check=unit_open)
    d_weight_decay: float = param(0.0, "L2 of every discriminator weight: lambda sum(w^2) / 2, as Adam's weight decay",
                                  check=nonnegative)
    d_precision: str = param("float32", "discriminator training precision: float32, or bfloat16 mixed precision "
                                        "(discriminators.trainer.PRECISIONS)", kind=RUN,
                             check=lambda v: None if v in PRECISIONS else f"one of {PRECISIONS}")
    d_compile: bool = param(False, "compile the discriminator's captured CUDA update with torch.compile: fused kernels "
                                   "(needs a CUDA device and triton; DiscriminatorTrainer's compile)", kind=RUN)
    d_heldout: int = param(1000, "held-out real sequences (the test set's, else split from training) scored with as "
                                 "many fresh samples for the held-out accuracy d_heldout_acc", kind=SIZE,
                           check=at_least(1))
    transform: Optional[str] = param(None, "reward transform (textgym.rewards.TRANSFORMS or centered_prob); None: "
                                           "the agent's own", check=check_transform)

    @property
    def oracle_reward(self) -> bool:
        """True when the oracle's log-likelihood replaces the discriminator."""
        return isinstance(self.discriminator, str) and self.discriminator == "oracle"


class AdversarialAgent(MLEAgent):
    """MLE pretraining, discriminator pretraining, then adversarial steps.

    Subclasses implement :meth:`generator_step` (one generator update; returns stats).
    An adversarial step is ``g_steps`` generator steps followed by ``d_steps`` discriminator
    rounds (skipped when no discriminator is trained).
    """

    name = "adversarial"
    Config: ClassVar[type] = AdversarialConfig
    config: AdversarialConfig

    def __init__(self, data, config=None, device="cpu", seed=0) -> None:
        super().__init__(data, config, device, seed)
        c = self.config
        self.gen_opt = torch.optim.Adam(self._generator.parameters(), lr=c.gen_lr, betas=(c.adam_beta1, 0.999))
        self.discriminator: Optional[Discriminator] = None
        self.d_trainer: Any = None
        if c.oracle_reward:
            if not isinstance(self.data, OracleData):
                raise ValueError(
                    f"discriminator='oracle' needs the synthetic oracle data (data='oracle'), not {self.data.name!r}"
                )
            self.scorer: Discriminator = scorers.OracleScorer(self.data.oracle_on(self.device))
        else:
            self.scorer = self.discriminator = self._build_discriminator()
        self.check_scorer()
        self.d_rng = torch.Generator().manual_seed(derive_seed(seed, "discriminator-dropout"))
        if self.discriminator is not None:
            self.d_trainer = self._build_trainer(self.discriminator)
        # The discriminator's held-out reals: the data's test set, which neither model trains on;
        # without one, the last training sequences, which the discriminator never trains on (the
        # generator's MLE does, so a generator that memorized them makes them look "fake" or
        # "real" for reasons of its own). Fresh samples come from a stream of their own.
        self.heldout_rng = torch.Generator(device=self.device).manual_seed(derive_seed(seed, "discriminator-heldout"))
        M = self.train_tokens.shape[0]
        test = self.data.test
        if c.oracle_reward:
            self.n_heldout, self.d_pool = 0, M
        elif test is not None and self.data.test_lengths is not None and len(test) > 0:
            self.n_heldout, self.d_pool = min(c.d_heldout, len(test)), M
            self.heldout_real = test[: self.n_heldout].to(self.device), self.data.test_lengths[: self.n_heldout].to(self.device)
        else:
            self.n_heldout = min(c.d_heldout, M // 5)
            self.d_pool = M - self.n_heldout
            self.heldout_real = self.train_tokens[self.d_pool :], self.train_lengths[self.d_pool :]
        self.weak_rounds = 0

    # ------------------------------------------------------------------ discriminator
    def _build_discriminator(self) -> Discriminator:
        d = self.config.discriminator
        if not isinstance(d, str):
            return d  # an object of the Discriminator protocol
        import discriminators

        with seeded(derive_seed(self.seed, "discriminator-init")):  # leaves the global RNGs alone
            disc = discriminators.make(
                d, vocab_size=self.data.vocab_size, max_length=self.data.max_length, **self.config.discriminator_options
            )
        return disc.to(self.device)

    def _build_trainer(self, disc: Any) -> Any:
        """A DiscriminatorTrainer for torch-module discriminators; None (a fixed scorer) otherwise."""
        if not isinstance(disc, torch.nn.Module):
            return None
        import discriminators

        c = self.config
        return discriminators.DiscriminatorTrainer(
            disc, lr=c.d_lr, batch_size=c.d_batch_size, betas=(c.d_adam_beta1, 0.999), weight_decay=c.d_weight_decay,
            seed=self._d_seed(), precision=c.d_precision, compile=c.d_compile,
        )

    def _d_seed(self) -> int:
        return derive_seed(self.seed, "discriminator")

    def check_scorer(self) -> None:
        """Subclasses refuse scorers that cannot give their reward (ValueError)."""

    @property
    def trains_discriminator(self) -> bool:
        return self.d_trainer is not None

    def real_batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """n training sequences (outside the discriminator's held-out split, when the data has no
        test set), drawn without replacement (with, if n exceeds the set) by ``data_rng``."""
        M = self.d_pool
        if n <= M:
            idx = torch.randperm(M, generator=self.data_rng)[:n]
        else:
            idx = torch.randint(M, (n,), generator=self.data_rng)
        idx = idx.to(self.device)
        return self.train_tokens[idx], self.train_lengths[idx]

    def sample_chunk(self) -> int:
        """Rows sampled at once for negatives and held-out samples: 2048 on the CPU (the sampler
        splits its work to cache size anyway; this bounds memory), 16384 elsewhere (an
        accelerator gains from fewer, larger kernels; about 330 MB of logits at V = 5000)."""
        return 2048 if self.device.type == "cpu" else 16384

    @torch.no_grad()
    def fake_batch(self, n: int, chunk: Optional[int] = None,
                   generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """n generator samples at temperature 1 drawn from ``generator`` (default: the agent's
        ``sample_rng``), in chunks of ``chunk`` rows (default :meth:`sample_chunk`) to bound memory."""
        chunk, rng = chunk or self.sample_chunk(), generator or self.sample_rng
        parts = [self._generator.sample_with_lengths(min(chunk, n - i), generator=rng) for i in range(0, n, chunk)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def discriminator_fakes(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The negatives of a discriminator round: n free generator samples (subclasses may differ)."""
        return self.fake_batch(n)

    def discriminator_round(self) -> Dict[str, float]:
        """One round: ``d_samples`` fresh negatives and as many real sequences, ``d_epochs`` epochs."""
        n = self.config.d_samples
        fake, fake_len = self.discriminator_fakes(n)
        real, real_len = self.real_batch(n)
        # Dropout inside the discriminator draws from the global RNG: fork it and seed it from
        # this agent's own stream so that discriminator training is reproducible and resumable.
        seed = int(torch.randint(0, 2**62, (1,), generator=self.d_rng))
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            out = self.d_trainer.step(real, real_len, fake, fake_len, k=self.config.d_epochs)
        return {f"d_{k}": check_finite(torch.as_tensor(float(out[k])), f"d_{k}", self.iteration)
                for k in ("loss", "acc_real", "acc_fake") if k in out}

    @torch.no_grad()
    def heldout_stats(self) -> Dict[str, Any]:
        """The scorer on the held-out real sequences and as many fresh samples
        (:func:`discriminators.evaluate`: eval mode, no gradient):

            d_heldout_acc  = (acc_real + acc_fake) / 2,  acc_real = P(logit > 0) + P(logit = 0) / 2 on real,
                             acc_fake = P(logit < 0) + P(logit = 0) / 2 on samples (0.5: no information)
            d_heldout_loss = binary cross-entropy of σ(logit), the mean of the two sets' means
            d_heldout_acc_by_position: per-prefix discriminators, the balanced accuracy at each t

        Warns once when the accuracy stays within ``WEAK_MARGIN`` of chance for ``WEAK_ROUNDS``
        evaluations in a row: the rewards then carry no information. {} in oracle mode.
        """
        n = self.n_heldout
        if n == 0 or not getattr(self.scorer, "is_probabilistic", True):
            return {}
        import discriminators

        out = discriminators.evaluate(self.scorer, *self.heldout_real, *self.fake_batch(n, generator=self.heldout_rng))
        acc = float(out["balanced_acc"])
        self.weak_rounds = weak_streak(self.weak_rounds, acc, self.name)
        stats: Dict[str, Any] = {"d_heldout_acc": acc, "d_heldout_loss": float(out["loss"])}
        if "acc_by_position" in out:
            stats["d_heldout_acc_by_position"] = [round(float(a), 4) for a in out["acc_by_position"]]
        return stats

    # ------------------------------------------------------------------ schedule
    @property
    def n_mle(self) -> int:
        return self.config.mle_epochs

    @property
    def n_d_pretrain(self) -> int:
        return self.config.d_pretrain_steps if self.trains_discriminator else 0

    @property
    def adv_start(self) -> int:
        """The iteration at which adversarial training starts."""
        return self.n_mle + self.n_d_pretrain

    @property
    def total_iterations(self) -> int:
        """``mle_epochs + d_pretrain_steps + adv_steps`` (no D pretraining without a trained discriminator)."""
        return self.adv_start + self.config.adv_steps

    def phase(self) -> str:
        if self.iteration < self.n_mle:
            return "mle"
        if self.iteration < self.adv_start:
            return "d_pretrain"
        return "adv"

    def train_iteration(self) -> Dict[str, Any]:
        phase = self.phase()
        if phase == "mle":
            stats = self.mle_epoch()
        elif phase == "d_pretrain":
            stats = {**self.discriminator_round(), **self.heldout_stats()}
        else:
            stats = self.adversarial_step()
        self.iteration += 1
        return {"phase": phase, **stats}

    def adversarial_step(self) -> Dict[str, float]:
        g_stats: List[Dict[str, float]] = [self.generator_step() for _ in range(self.config.g_steps)]
        stats = {k: sum(s[k] for s in g_stats) / len(g_stats) for k in g_stats[0]}
        if self.trains_discriminator:
            for _ in range(self.config.d_steps):
                stats.update(self.discriminator_round())  # d_loss, d_acc_real, d_acc_fake of the last round
        stats.update(self.heldout_stats())
        return stats

    def generator_step(self) -> Dict[str, float]:
        raise NotImplementedError

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> Dict[str, Any]:
        state = super().state_dict()
        state["gen_opt"] = self.gen_opt.state_dict()
        state["d_rng"] = self.d_rng.get_state()
        state["heldout_rng"] = self.heldout_rng.get_state()
        state["weak_rounds"] = self.weak_rounds
        if self.discriminator is not None and hasattr(self.discriminator, "state_dict"):
            state["discriminator"] = self.discriminator.state_dict()
        if self.d_trainer is not None:
            state["d_trainer"] = self.d_trainer.state_dict()
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        load_optimizer_state(self.gen_opt, state["gen_opt"])
        self.d_rng.set_state(state["d_rng"])
        self.heldout_rng.set_state(state["heldout_rng"])
        self.weak_rounds = int(state["weak_rounds"])
        if "discriminator" in state and hasattr(self.discriminator, "load_state_dict"):
            self.discriminator.load_state_dict(state["discriminator"])  # type: ignore[union-attr]
        if "d_trainer" in state and self.d_trainer is not None:
            self.d_trainer.load_state_dict(state["d_trainer"])

    def _warm_start_part(self, state: Dict[str, Any], part: str) -> None:
        if part != "discriminator":
            super()._warm_start_part(state, part)
            return
        if not isinstance(self.discriminator, torch.nn.Module):
            raise ValueError(f"agent {self.name!r} trains no discriminator module to warm start")
        if "discriminator" not in state:
            raise ValueError("the source run has no trained discriminator")
        load_weights(self.discriminator, state["discriminator"], "the source run's discriminator")
